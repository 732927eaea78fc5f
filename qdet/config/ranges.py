"""The range of every number in params.yaml and the checks across keys: a value that cannot
make sense stops the stage with one line naming the key."""

from __future__ import annotations

from qdet.config.sections import Config, ConfigError, config_to_dict, flatten

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
    "data.seed": NON_NEGATIVE,
    "data.valid_fraction": FRACTION,
    "data.test_fraction": FRACTION,
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
    "benchmark.block": POSITIVE,
    "benchmark.throughput_seconds": NON_NEGATIVE,
    "benchmark.images": POSITIVE,
    "register.max_map_drop": UNIT,
    "quant.max_drop": UNIT,
    "register.min_speedup": NON_NEGATIVE,
}  # every number in params.yaml has its range here (a test checks that none is missing)
_IN_RANGE = {
    POSITIVE: lambda v: v > 0,
    NON_NEGATIVE: lambda v: v >= 0,
    FRACTION: lambda v: 0 < v < 1,
    UNIT: lambda v: 0 <= v <= 1,
}


def check_ranges(cfg: Config) -> None:
    """Every number in its range, and the settings that only make sense together."""
    values = flatten(config_to_dict(cfg))
    for key, allowed in RANGES.items():
        value = values[key]
        for item in value if isinstance(value, list) else [value]:
            if not _IN_RANGE[allowed](item):
                raise ConfigError(f"{key}: must be {allowed}, got {value}")
    for key, seed in (("seed", cfg.seed), ("data.seed", cfg.data.seed)):
        if seed >= 2**32:  # numpy's and the data generators' seeds are 32-bit
            raise ConfigError(f"{key}: must be < 2**32 (4294967296), got {seed}")
    if not cfg.quant.parts:  # an "int8" variant with nothing in int8 would be benchmarked as int8
        raise ConfigError(
            "quant.parts: name at least one part to convert to int8 (backbone, rpn_head, box_head, "
            "box_predictor); the float model is already in every run as float_eager"
        )
    if cfg.train.nnodes > 1 and ":" not in cfg.train.rdzv_endpoint:
        raise ConfigError("train.rdzv_endpoint: with train.nnodes > 1 give host:port of the rendezvous")
    if cfg.data.valid_fraction + cfg.data.test_fraction >= 1:
        raise ConfigError("data.valid_fraction + data.test_fraction: must be < 1 (training needs images)")
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
