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
    nproc: int  # processes (torchrun DDP) for training, per node
    nnodes: int  # machines training together (torchrun c10d rendezvous)
    rdzv_endpoint: str  # host:port of the rendezvous when nnodes > 1 (a port on one of the nodes)
    device: Literal["auto", "cpu", "cuda"]  # training and QAT only; the int8 stages stay on the CPU


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


POSITIVE, NON_NEGATIVE, FRACTION, UNIT = "> 0", ">= 0", "in (0, 1)", "in [0, 1]"
_SCHEDULE = {
    "epochs": POSITIVE,
    "batch_size": POSITIVE,
    "lr": POSITIVE,
    "momentum": UNIT,
    "weight_decay": NON_NEGATIVE,
    "step_size": POSITIVE,
    "gamma": POSITIVE,
    "warmup_iters": NON_NEGATIVE,
}
RANGES: dict[str, str] = {
    "seed": NON_NEGATIVE,
    "data.valid_fraction": FRACTION,
    "data.min_box_size": NON_NEGATIVE,
    **{
        f"data.synthetic.{k}": POSITIVE for k in ("num_images", "width", "height", "min_object", "max_object")
    },
    "data.synthetic.max_objects": POSITIVE,
    "data.synthetic.empty_fraction": UNIT,
    **{
        f"model.{k}": POSITIVE
        for k in (
            "fpn_channels",
            "fpn_levels",
            "min_size",
            "max_size",
            "anchor_sizes",
            "aspect_ratios",
            "roi_output_size",
            "representation_size",
            "rpn_pre_nms_top_n_train",
            "rpn_post_nms_top_n_train",
            "rpn_pre_nms_top_n_test",
            "rpn_post_nms_top_n_test",
            "box_batch_size_per_image",
            "box_detections_per_img",
        )
    },
    "model.box_score_thresh": UNIT,
    **{f"train.{k}": v for k, v in _SCHEDULE.items()},
    "train.color_jitter": UNIT,
    "train.threads": POSITIVE,
    "train.workers": NON_NEGATIVE,
    "train.nproc": POSITIVE,
    "train.nnodes": POSITIVE,
    **{f"qat.{k}": v for k, v in _SCHEDULE.items()},
    "qat.max_images": NON_NEGATIVE,
    "qat.freeze_bn_after": NON_NEGATIVE,
    "qat.freeze_observer_after": NON_NEGATIVE,
    "calibrate.images": POSITIVE,
    "evaluate.grid_images": NON_NEGATIVE,
    "evaluate.draw_threshold": UNIT,
    "benchmark.threads": POSITIVE,
    "benchmark.warmup": NON_NEGATIVE,
    "benchmark.rounds": POSITIVE,
    "benchmark.images": POSITIVE,
    "register.max_map_drop": UNIT,
    "register.min_speedup": NON_NEGATIVE,
}  # every number in params.yaml has its range here (a test checks that none is missing)
_IN_RANGE = {
    POSITIVE: lambda v: v > 0,
    NON_NEGATIVE: lambda v: v >= 0,
    FRACTION: lambda v: 0 < v < 1,
    UNIT: lambda v: 0 <= v <= 1,
}


def _check_ranges(cfg: Config) -> None:
    values = flatten(config_to_dict(cfg))
    for key, allowed in RANGES.items():
        value = values[key]
        for item in value if isinstance(value, list) else [value]:
            if not _IN_RANGE[allowed](item):
                raise ConfigError(f"{key}: must be {allowed}, got {value}")
    if cfg.seed >= 2**32:  # numpy's and the data generators' seeds are 32-bit
        raise ConfigError(f"seed: must be < 2**32 (4294967296), got {cfg.seed}")
    if not cfg.quant.parts:  # an "int8" variant with nothing in int8 would be benchmarked as int8
        raise ConfigError(
            "quant.parts: name at least one part to convert to int8 (backbone, rpn_head, box_head, "
            "box_predictor); the float model is already in every run as float_eager"
        )
    if cfg.train.nnodes > 1 and ":" not in cfg.train.rdzv_endpoint:
        raise ConfigError("train.rdzv_endpoint: with train.nnodes > 1 give host:port of the rendezvous")
    if cfg.model.max_size < cfg.model.min_size:
        raise ConfigError("model.max_size: must be >= model.min_size")
    if cfg.data.synthetic.empty_fraction == 1.0:
        raise ConfigError("data.synthetic.empty_fraction: must be < 1 (some images need objects)")
    syn = cfg.data.synthetic
    if not 4 <= syn.min_object <= syn.max_object <= min(syn.width, syn.height):
        raise ConfigError(
            "data.synthetic.min_object/max_object: need 4 <= min_object <= max_object <= image side"
        )
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
