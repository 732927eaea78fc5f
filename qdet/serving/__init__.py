"""Serving: the MLflow pyfunc wrapper around a TorchScript detector, and registry helpers."""
