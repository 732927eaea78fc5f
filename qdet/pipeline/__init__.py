"""What the DVC stages stand on, above the library: the stage boundary (:mod:`.stage`: params to a
typed config, seeds, the stage's MLflow run, one-line errors) and the skeleton the three training
stages share (:mod:`.session`). Only ``stages/`` imports this package."""
