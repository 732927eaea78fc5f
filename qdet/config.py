"""Typed configuration: one dataclass per params.yaml section, validated once at the stage boundary.

Stages turn the params dict into these objects; the library only ever sees typed values. Every
error names the offending key (``train.lr``) and, where there is a fixed set, the allowed values.
params.yaml is the one source of defaults: the dataclasses have none, and a missing key is an
error naming it.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from qdet.errors import QdetError


class ConfigError(QdetError, ValueError):
    """A params key is unknown, missing or has a bad value; the message names the key."""


@dataclass
class SyntheticConfig:
    num_images: int  # images written by the synthetic generator
    width: int  # image width in pixels
    height: int  # image height in pixels
    min_object: int  # smallest object side in pixels
    max_object: int  # largest object side in pixels
    max_objects: int  # most objects per image
    empty_fraction: float  # share of images with no object (negatives)


@dataclass
class DataConfig:
    source: str  # synthetic | download | path to a local archive or folder
    md5: str  # auto (official md5 for downloads) | none | an md5 hex digest to check
    classes: Literal["super", "full"]  # gtsdb: 4 super-categories or all 43 classes
    valid_fraction: float  # share of images in the valid split (split by image)
    strict: bool  # true: a bad annotation record is an error; false: skipped and counted
    min_box_size: float  # boxes narrower/shorter than this (pixels) after clipping are skipped
    synthetic: SyntheticConfig


@dataclass
class ModelConfig:
    fpn: bool  # multi-scale FPN, or one feature map from the last stage
    fpn_channels: int  # FPN output channels
    fpn_levels: int  # number of deepest backbone stages fed to the FPN
    weights: str  # none | imagenet | path to a checkpoint
    min_size: int  # image resize: shorter side
    max_size: int  # image resize: longer side cap
    anchor_sizes: list[int]
    aspect_ratios: list[float]
    roi_output_size: int  # RoI align output (square)
    roi_align_tasks: int  # parallel RoI align chunks in TorchScript (1 = torchvision's)
    representation_size: int  # box head MLP width
    rpn_pre_nms_top_n_train: int
    rpn_post_nms_top_n_train: int
    rpn_pre_nms_top_n_test: int
    rpn_post_nms_top_n_test: int  # proposals per image at inference: a speed/accuracy knob
    box_batch_size_per_image: int  # RoIs sampled per image for the box head loss
    box_score_thresh: float
    box_detections_per_img: int


@dataclass
class ScheduleConfig:
    """How a model is trained: shared by float training (``train.*``) and QAT (``qat.*``), each
    section with its own values, so QAT never silently inherits the float recipe."""

    epochs: int
    batch_size: int  # global batch (split over train.nproc processes)
    optimizer: Literal["sgd", "adamw"]
    lr: float  # peak learning rate
    momentum: float  # sgd only
    weight_decay: float
    scheduler: Literal["cosine", "step", "none"]  # per iteration, after warm-up
    step_size: int  # step scheduler: epochs between decays
    gamma: float  # step scheduler: decay factor
    warmup_iters: int  # linear LR warm-up at the start


@dataclass
class TrainConfig(ScheduleConfig):
    """Float training. Augmentation and resources here apply to QAT too (same images, same
    machine); the schedule does not."""

    hflip: Literal["auto", "on", "off"]  # auto: off for gtsdb (mirrored signs), on otherwise
    color_jitter: float  # brightness/contrast jitter strength, 0 disables
    threads: int  # torch intra-op threads
    workers: int  # DataLoader worker processes
    nproc: int  # processes (torchrun DDP) for training


@dataclass
class QuantConfig:
    engine: Literal["fx", "pt2e"]  # fx: torch.ao FX + TorchScript; pt2e: torchao PT2E + AOTInductor
    backend: Literal["x86", "fbgemm", "qnnpack"]
    parts: list[str]
    skip: list[str]  # module names kept in float
    per_channel: bool  # per-channel weight quantization
    reduce_range: bool  # 7-bit activations (older x86 CPUs without VNNI)


@dataclass
class CalibrateConfig:
    images: int  # training images run through the observers
    observer: Literal["minmax", "moving_average", "histogram"]


@dataclass
class QatConfig(ScheduleConfig):
    max_images: int  # images per epoch (0: the whole train split)
    calibrate_first: bool  # start the fake-quant ranges from a calibration pass
    freeze_bn_after: int  # epochs after which BN statistics are frozen
    freeze_observer_after: int  # epochs after which observer ranges are frozen
    frozen_layers: list[str]  # e.g. [body.0, body.1]: no grads
    control: bool  # also fine-tune the float model the same way (float_ft), to separate QAT from training


@dataclass
class EvaluateConfig:
    grid_images: int  # valid images drawn in the detection grid
    draw_threshold: float  # score threshold for drawn boxes


@dataclass
class BenchmarkConfig:
    threads: int
    warmup: int  # untimed rounds per variant
    rounds: int  # timed rounds per variant (interleaved)
    images: int  # distinct valid images cycled through


@dataclass
class RegisterConfig:
    model_name: str  # auto: qdet-<dataset>-<backbone>
    alias: str
    max_map_drop: float  # mAP@.5 drop vs float allowed for the alias
    min_speedup: float  # speedup vs the fastest float variant required for the alias


@dataclass
class TrackingConfig:
    experiment: str
    enabled: bool


@dataclass
class Config:
    dataset: Literal["gtsdb", "pennfudan", "voc"]
    backbone: str
    seed: int
    data: DataConfig
    model: ModelConfig
    train: TrainConfig
    quant: QuantConfig
    calibrate: CalibrateConfig
    qat: QatConfig
    evaluate: EvaluateConfig
    benchmark: BenchmarkConfig
    register: RegisterConfig
    tracking: TrackingConfig


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
    missing = [n for n in names if n not in data]
    if missing:
        where = f"{prefix}." if prefix else ""
        raise ConfigError(f"missing params key {where}{missing[0]} (every key is required; see params.yaml)")
    kwargs = {
        name: _convert(value, hints[name], f"{prefix}.{name}" if prefix else name)
        for name, value in data.items()
    }
    return cls(**kwargs)


def section_from_dict(cls: type, data: dict[str, Any], prefix: str) -> Any:
    """One validated section (e.g. the ``model`` dict stored in a checkpoint)."""
    return _build(cls, data, prefix)


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
