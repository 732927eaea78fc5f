"""One dataclass per params.yaml section, typed: what each key holds."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from qdet.config.engines import ENGINES
from qdet.core.errors import QdetError


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
    valid_fraction: float  # share of images in the valid split (split by image): watched while training
    test_fraction: float  # share of images in the test split, where every reported accuracy comes from
    strict: bool  # true: a bad annotation record is an error; false: skipped and counted
    min_box_size: float  # boxes narrower/shorter than this (pixels) after clipping are skipped
    seed: int  # the data's own seed: synthetic images and the split; the training seed never moves them
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
    precision: Literal["auto", "fp32", "bf16"]  # float training: auto = bf16 autocast on a bf16 CPU


@dataclass
class QuantConfig:
    engine: Literal[ENGINES]  # type: ignore[valid-type]  # the registry: qdet.config.engines
    backend: Literal["x86", "fbgemm", "qnnpack"]
    parts: list[str]
    skip: list[str]  # module names kept in float
    per_channel: bool  # per-channel weight quantization
    reduce_range: bool  # 7-bit activations (older x86 CPUs without VNNI)
    float_dtype: Literal["auto", "fp32", "bf16"]  # what the int8 artifacts' float ops compute in
    max_drop: float  # mAP@.5 points PTQ may lose on the valid split before modules are kept float
    search: Literal["auto", "off"]  # auto: the search stage enforces max_drop; off: PTQ as calibrated


@dataclass
class CalibrateConfig:
    images: int  # images run through the observers
    observer: Literal["minmax", "moving_average", "histogram"]
    source: Literal["train", "folder"]  # the train split, or the images in calibration/


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
    grid_images: int  # test images drawn in the detection grid
    draw_threshold: float  # score threshold for drawn boxes


@dataclass
class BenchmarkConfig:
    threads: int
    warmup: int  # untimed calls per variant before the rounds
    rounds: int  # rounds; each gives every variant a block of back-to-back calls, in rotating order
    block: int  # timed calls per block (each block's first call, before them, is not timed)
    images: int  # distinct test images cycled through
    throughput_seconds: float  # how long each throughput setting runs (0: no throughput rows)


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
