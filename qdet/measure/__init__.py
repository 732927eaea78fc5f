"""Measuring a variant: accuracy (COCO mAP with paired bootstrap intervals), speed and memory
(interleaved rounds, one process per memory probe, streams), and what the CPU's kernels allow
(the int8 floor, per-part breakdown)."""
