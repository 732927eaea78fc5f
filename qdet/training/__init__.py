"""Training: the epoch loop shared by train, qat and control (:mod:`.loop`: validation,
checkpoints, resume, history) and the steps it runs (:mod:`.steps`: one epoch, inference over a
dataset, optimizer and learning-rate schedule). Nothing is imported here: :mod:`qdet.metrics`
uses the steps, the loop uses the metrics."""
