"""The model registry: the champion policy (:mod:`qdet.registry.champion`, pure: which variant
takes the alias and why) and the MLflow I/O that applies it (:mod:`qdet.registry.publish`:
versions, tags, aliases, the logged models and their metrics)."""
