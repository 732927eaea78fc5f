"""What the pipeline measures and how it shows it: the variant table every reader goes through,
the artifacts convert wrote (manifest, loading, sizes), accuracy (COCO mAP with paired
bootstrap intervals), speed and memory (interleaved rounds, one process per memory probe), the
plots and the results page."""
