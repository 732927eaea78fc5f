"""Commands a user runs by hand beside the pipeline, declared as entry points in pyproject.toml:
``qdet-compare-engines`` (the engines on the same backbones, one process), ``qdet-seeds`` (the
float recipe at several seeds) and ``qdet-served`` (a served model under load). Nothing in qdet
imports this package."""
