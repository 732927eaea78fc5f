"""The bottom layer, shared by every package and importing none of them: the console and its
one-line errors, atomic file writes, progress bars, checkpoints (atomic save, safe load, resume
fingerprint), where a model runs, and the lifeline that ends a stage with the ``dvc`` that
started it."""
