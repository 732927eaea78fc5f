"""Training: the epoch loop shared by train, qat and control (:mod:`.loop`: validation,
checkpoints, resume, history), the steps it runs (:mod:`.steps`: one epoch, inference over a
dataset, optimizer and learning-rate schedule), where it runs (:mod:`.device`, DDP in
:mod:`.distributed`), its checkpoints (:mod:`.checkpoint`) and the QAT control (:mod:`.control`).
Nothing is imported here: :mod:`qdet.measure.accuracy` uses the steps, the loop uses the metrics."""
