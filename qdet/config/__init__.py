"""Typed configuration: one dataclass per params.yaml section, validated once at the stage boundary.

Stages turn the params dict into these objects; the library only ever sees typed values. Every
error names the offending key (``train.lr``) and, where there is a fixed set, the allowed values.
params.yaml is the one source of defaults: the dataclasses have none, and a missing key is an
error naming it.
"""

from qdet.config.load import config_from_dict, load_config, section_from_dict
from qdet.config.ranges import RANGES
from qdet.config.sections import (
    BenchmarkConfig,
    CalibrateConfig,
    Config,
    ConfigError,
    DataConfig,
    EvaluateConfig,
    ModelConfig,
    QatConfig,
    QuantConfig,
    RegisterConfig,
    ScheduleConfig,
    SyntheticConfig,
    TrackingConfig,
    TrainConfig,
    config_to_dict,
    flatten,
)

__all__ = [
    "RANGES",
    "config_from_dict",
    "config_to_dict",
    "flatten",
    "load_config",
    "section_from_dict",
    "ConfigError",
    "SyntheticConfig",
    "DataConfig",
    "ModelConfig",
    "ScheduleConfig",
    "TrainConfig",
    "QuantConfig",
    "CalibrateConfig",
    "QatConfig",
    "EvaluateConfig",
    "BenchmarkConfig",
    "RegisterConfig",
    "TrackingConfig",
    "Config",
]
