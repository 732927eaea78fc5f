"""Typed configuration: one dataclass per params.yaml section, validated once at the stage boundary.

Stages turn the params dict into these objects; the library only ever sees typed values. Every
error names the offending key (``train.lr``) and, where there is a fixed set, the allowed values.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml


class ConfigError(ValueError):
    """A params key is unknown, missing or has a bad value; the message names the key."""


@dataclass
class SyntheticConfig:
    num_images: int = 400  # images written by the synthetic generator
    width: int = 512  # image width in pixels
    height: int = 320  # image height in pixels
    min_object: int = 16  # smallest object side in pixels
    max_object: int = 96  # largest object side in pixels
    max_objects: int = 4  # most objects per image
    empty_fraction: float = 0.1  # share of images with no object (negatives)


@dataclass
class DataConfig:
    source: str = "synthetic"  # synthetic | download | path to a local archive or folder
    md5: str = "auto"  # auto (official md5 for downloads) | none | an md5 hex digest to check
    classes: Literal["super", "full"] = "super"  # gtsdb: 4 super-categories or all 43 classes
    valid_fraction: float = 0.2  # share of images in the valid split (split by image)
    strict: bool = False  # true: a bad annotation record is an error; false: skipped and counted
    min_box_size: float = 2.0  # boxes narrower/shorter than this (pixels) after clipping are skipped
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)


@dataclass
class ModelConfig:
    fpn: bool = True  # multi-scale FPN, or one feature map from the last stage
    fpn_channels: int = 128  # FPN output channels
    fpn_levels: int = 3  # number of deepest backbone stages fed to the FPN
    weights: str = "none"  # none | imagenet | path to a checkpoint
    min_size: int = 320  # image resize: shorter side
    max_size: int = 512  # image resize: longer side cap
    anchor_sizes: list[int] = field(default_factory=lambda: [16, 32, 64, 128])
    aspect_ratios: list[float] = field(default_factory=lambda: [1.0])
    roi_output_size: int = 7  # RoI align output (square)
    roi_align_tasks: int = 2  # parallel RoI align chunks in TorchScript (1 = torchvision's)
    representation_size: int = 256  # box head MLP width
    rpn_pre_nms_top_n_train: int = 1000
    rpn_post_nms_top_n_train: int = 500
    rpn_pre_nms_top_n_test: int = 500
    rpn_post_nms_top_n_test: int = 300  # proposals per image at inference: a speed/accuracy knob
    box_batch_size_per_image: int = 128  # RoIs sampled per image for the box head loss
    box_score_thresh: float = 0.05
    box_detections_per_img: int = 100


@dataclass
class TrainConfig:
    epochs: int = 4
    batch_size: int = 4
    optimizer: Literal["sgd", "adamw"] = "adamw"
    lr: float = 1e-3
    momentum: float = 0.9  # sgd only
    weight_decay: float = 1e-4
    scheduler: Literal["cosine", "step", "none"] = "cosine"
    step_size: int = 3  # step scheduler: epochs between decays
    gamma: float = 0.1  # step scheduler: decay factor
    warmup_iters: int = 50  # linear LR warm-up at the start
    hflip: Literal["auto", "on", "off"] = "auto"  # auto: off for gtsdb (mirrored signs), on otherwise
    color_jitter: float = 0.2  # brightness/contrast jitter strength, 0 disables
    threads: int = 2  # torch intra-op threads
    workers: int = 0  # DataLoader worker processes
    nproc: int = 1  # processes (torchrun DDP) for training


@dataclass
class QuantConfig:
    backend: Literal["x86", "fbgemm", "qnnpack"] = "x86"
    parts: list[str] = field(default_factory=lambda: ["backbone", "rpn_head", "box_head", "box_predictor"])
    skip: list[str] = field(default_factory=list)  # module names kept in float
    per_channel: bool = True  # per-channel weight quantization
    reduce_range: bool = False  # 7-bit activations (older x86 CPUs without VNNI)


@dataclass
class CalibrateConfig:
    images: int = 64  # training images run through the observers
    observer: Literal["minmax", "moving_average", "histogram"] = "histogram"


@dataclass
class QatConfig:
    epochs: int = 1
    lr: float = 2e-5
    batch_size: int = 4
    max_images: int = 0  # images per epoch (0: the whole train split)
    calibrate_first: bool = True  # start the fake-quant ranges from a calibration pass
    freeze_bn_after: int = 0  # epochs after which BN statistics are frozen
    freeze_observer_after: int = 1  # epochs after which observer ranges are frozen
    frozen_layers: list[str] = field(default_factory=list)  # e.g. [body.0, body.1]: no grads


@dataclass
class EvaluateConfig:
    grid_images: int = 8  # valid images drawn in the detection grid
    draw_threshold: float = 0.5  # score threshold for drawn boxes


@dataclass
class BenchmarkConfig:
    threads: int = 2
    warmup: int = 3  # untimed rounds per variant
    rounds: int = 15  # timed rounds per variant (interleaved)
    images: int = 5  # distinct valid images cycled through


@dataclass
class RegisterConfig:
    model_name: str = "auto"  # auto: qdet-<dataset>-<backbone>
    alias: str = "champion"
    max_map_drop: float = 0.03  # mAP@.5 drop vs float allowed for the alias
    min_speedup: float = 2.0  # speedup vs float eager required for the alias


@dataclass
class TrackingConfig:
    experiment: str = "qdet"
    enabled: bool = True


@dataclass
class Config:
    dataset: Literal["gtsdb", "pennfudan", "voc"] = "gtsdb"
    backbone: str = "resnet18"
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    quant: QuantConfig = field(default_factory=QuantConfig)
    calibrate: CalibrateConfig = field(default_factory=CalibrateConfig)
    qat: QatConfig = field(default_factory=QatConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    benchmark: BenchmarkConfig = field(default_factory=BenchmarkConfig)
    register: RegisterConfig = field(default_factory=RegisterConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)


def _convert(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``; return it (ints are accepted as floats)."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return _build(tp, value, key)
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise ConfigError(f"{key}: {value!r} is not one of {', '.join(map(str, allowed))}")
        return value
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return [_convert(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin in (typing.Union, types.UnionType):
        raise TypeError(f"{key}: unions are not supported in config")
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-05 (as `dvc exp run -S` writes it) as a string
            try:
                return float(value)
            except ValueError:
                raise ConfigError(f"{key}: expected a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise TypeError(f"{key}: unsupported annotation {tp!r}")


def _build(cls: type, data: dict[str, Any], prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        where = f"{prefix}." if prefix else ""
        raise ConfigError(
            f"unknown params key {where}{unknown[0]}; allowed keys"
            f"{' in ' + prefix if prefix else ''}: {', '.join(names)}"
        )
    kwargs = {
        name: _convert(value, hints[name], f"{prefix}.{name}" if prefix else name)
        for name, value in data.items()
    }
    return cls(**kwargs)


def _check_ranges(cfg: Config) -> None:
    def positive(key: str, value: float) -> None:
        if value <= 0:
            raise ConfigError(f"{key}: must be > 0, got {value}")

    positive("train.epochs", cfg.train.epochs)
    positive("train.batch_size", cfg.train.batch_size)
    positive("train.lr", cfg.train.lr)
    positive("train.threads", cfg.train.threads)
    positive("train.nproc", cfg.train.nproc)
    positive("qat.lr", cfg.qat.lr)
    positive("qat.batch_size", cfg.qat.batch_size)
    positive("calibrate.images", cfg.calibrate.images)
    positive("benchmark.threads", cfg.benchmark.threads)
    positive("benchmark.rounds", cfg.benchmark.rounds)
    positive("benchmark.images", cfg.benchmark.images)
    positive("model.min_size", cfg.model.min_size)
    positive("model.fpn_levels", cfg.model.fpn_levels)
    positive("model.roi_align_tasks", cfg.model.roi_align_tasks)
    if cfg.model.max_size < cfg.model.min_size:
        raise ConfigError("model.max_size: must be >= model.min_size")
    if not 0.0 < cfg.data.valid_fraction < 1.0:
        raise ConfigError(f"data.valid_fraction: must be in (0, 1), got {cfg.data.valid_fraction}")
    if not 0.0 <= cfg.data.synthetic.empty_fraction < 1.0:
        raise ConfigError("data.synthetic.empty_fraction: must be in [0, 1)")
    syn = cfg.data.synthetic
    if not 4 <= syn.min_object <= syn.max_object <= min(syn.width, syn.height):
        raise ConfigError(
            "data.synthetic.min_object/max_object: need 4 <= min_object <= max_object <= image side"
        )
    positive("qat.epochs", cfg.qat.epochs)
    if not cfg.model.anchor_sizes or not cfg.model.aspect_ratios:
        raise ConfigError("model.anchor_sizes / model.aspect_ratios: must not be empty")
    if cfg.model.fpn and len(cfg.model.anchor_sizes) != cfg.model.fpn_levels + 1:
        raise ConfigError(
            f"model.anchor_sizes: with an FPN of {cfg.model.fpn_levels} levels (+1 pooled level) "
            f"give {cfg.model.fpn_levels + 1} sizes, one per level; got {cfg.model.anchor_sizes}"
        )


def config_from_dict(data: dict[str, Any]) -> Config:
    """Build and validate a :class:`Config`; unknown keys and bad values raise ConfigError."""
    cfg = _build(Config, data or {}, "")
    _check_ranges(cfg)
    return cfg


def load_config(path: Path) -> Config:
    """Read a params file; YAML errors and bad keys become one ConfigError naming the file."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read params: {exc}") from exc
    try:
        return config_from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def config_to_dict(cfg: Config) -> dict[str, Any]:
    """Plain dict of the resolved config, stored inside checkpoints and logged to MLflow."""
    return dataclasses.asdict(cfg)


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; used for MLflow params."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else k
        if isinstance(v, dict):
            out.update(flatten(v, key))
        else:
            out[key] = v
    return out
