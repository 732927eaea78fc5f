"""The results page and its plots: reads the metrics files the stages wrote and renders
``reports/results.md`` and the PNGs beside it. Measures nothing itself."""
