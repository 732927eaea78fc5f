"""What every entry point shares and nothing else: the stage boundary (params, seeds, the MLflow
run), the console and its one-line errors, atomic file writes, progress bars, and the lifeline
that ends a stage with the ``dvc`` that started it. Imports no model, data or engine code."""
