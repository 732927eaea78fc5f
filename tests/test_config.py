import copy

import pytest

from qdet.config import ConfigError, config_from_dict, load_config
from tests.helpers import DEFAULTS, REPO, merge


def test_repo_params_file_is_valid():
    cfg = load_config(REPO / "params.yaml")
    assert cfg.dataset in ("gtsdb", "pennfudan", "voc")


def test_unknown_key_is_named():
    with pytest.raises(ConfigError, match=r"train\.epoks.*allowed keys in train: epochs"):
        config_from_dict(merge(DEFAULTS, {"train": {"epoks": 3}}))


def test_unknown_top_level_key_is_named():
    with pytest.raises(ConfigError, match="unknown params key bakbone"):
        config_from_dict(merge(DEFAULTS, {"bakbone": "resnet18"}))


def test_bad_choice_lists_allowed_values():
    with pytest.raises(ConfigError, match="dataset: 'coco' is not one of gtsdb, pennfudan, voc"):
        config_from_dict(merge(DEFAULTS, {"dataset": "coco"}))


def test_bad_type_names_key():
    with pytest.raises(ConfigError, match=r"train\.lr: expected a number"):
        config_from_dict(merge(DEFAULTS, {"train": {"lr": "fast"}}))


def test_range_checked():
    with pytest.raises(ConfigError, match=r"data\.valid_fraction"):
        config_from_dict(merge(DEFAULTS, {"data": {"valid_fraction": 1.5}}))


def test_anchor_sizes_must_match_fpn_levels():
    with pytest.raises(ConfigError, match=r"model\.anchor_sizes"):
        config_from_dict(merge(DEFAULTS, {"model": {"anchor_sizes": [32, 64]}}))


def test_ints_accepted_for_floats():
    assert config_from_dict(merge(DEFAULTS, {"train": {"lr": 1}})).train.lr == 1.0


def test_unreadable_yaml_names_file(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="params.yaml"):
        load_config(bad)


def test_exponent_strings_from_dvc_exp_are_numbers():
    # `dvc exp run -S qat.lr=0.00001` writes 1e-05, which YAML 1.1 reads as a string
    assert config_from_dict(merge(DEFAULTS, {"qat": {"lr": "1e-05"}})).qat.lr == 1e-5


def test_missing_key_is_named():
    params = copy.deepcopy(DEFAULTS)
    del params["qat"]["optimizer"]
    with pytest.raises(ConfigError, match=r"missing params key qat\.optimizer"):
        config_from_dict(params)


def test_params_file_is_the_only_source_of_defaults():
    """The dataclasses have no defaults of their own that could drift from params.yaml."""
    import dataclasses

    from qdet import config as module

    for cls in vars(module).values():
        if dataclasses.is_dataclass(cls):
            defaults = [f.name for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING]
            factories = [
                f.name for f in dataclasses.fields(cls) if f.default_factory is not dataclasses.MISSING
            ]
            assert not defaults and not factories, (cls.__name__, defaults, factories)


def test_every_number_in_params_has_a_range():
    from qdet.config import RANGES, flatten

    numbers = {
        k
        for k, v in flatten(DEFAULTS).items()
        if isinstance(v, int | float)
        and not isinstance(v, bool)
        or (isinstance(v, list) and v and isinstance(v[0], int | float))
    }
    assert numbers == set(RANGES)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("qat.max_images", -1, "qat.max_images: must be >= 0, got -1"),
        ("model.fpn_channels", 0, "model.fpn_channels: must be > 0, got 0"),
        ("train.workers", -1, "train.workers: must be >= 0, got -1"),
        ("data.valid_fraction", 1.0, "data.valid_fraction: must be in (0, 1), got 1.0"),
        ("model.box_score_thresh", 1.5, "model.box_score_thresh: must be in [0, 1], got 1.5"),
        ("model.anchor_sizes", [16, 0, 64, 128], "model.anchor_sizes: must be > 0, got [16, 0, 64, 128]"),
    ],
)
def test_out_of_range_values_name_the_key(key, value, message):
    section, name = key.split(".")
    with pytest.raises(
        ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
    ):
        config_from_dict(merge(DEFAULTS, {section: {name: value}}))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"seed": 2**32}, r"seed: must be < 2\*\*32"),
        ({"quant": {"parts": []}}, r"quant\.parts: name at least one part"),
    ],
)
def test_settings_that_cannot_make_sense_are_refused_naming_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict(merge(DEFAULTS, override))
    config_from_dict(merge(DEFAULTS, {"seed": 2**32 - 1}))


def test_the_params_files_own_examples_are_valid():
    """Every ``e.g. [...]`` list in params.yaml's comments, put in its key, passes the config and
    (for module names) the model check the stage makes."""
    import re

    from qdet.models.detector import build_detector
    from qdet.quant.parts import check_skip
    from tests.helpers import TINY_MODEL

    examples = {}
    for line in (REPO / "params.yaml").read_text().splitlines():
        found = re.match(r"\s+(\w+):.*# list\[str\].*e\.g\. \[([^\]]*)\]", line)
        if found:
            examples[found[1]] = [name.strip() for name in found[2].split(",")]
    assert set(examples) == {"skip", "frozen_layers"}
    cfg = config_from_dict(merge(DEFAULTS, {"quant": {"skip": examples["skip"]}}))
    model = build_detector("resnet18", TINY_MODEL, num_classes=3)
    check_skip(model, cfg.quant.parts, cfg.quant.skip)
    names = {n for n, _ in model.named_modules()}
    assert set(examples["frozen_layers"]) <= names
