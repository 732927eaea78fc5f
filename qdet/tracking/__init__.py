"""MLflow tracking: the store and its checks (:mod:`.store`), the runs of a stage and its
pipeline (:mod:`.run`), and which figures go on which run (:mod:`.summary`)."""

from qdet.tracking.run import NoRun, StageRun, git, git_commit, pipeline_key, process_alive, process_tags
from qdet.tracking.store import (
    TrackingUnavailable,
    check_reachable,
    check_sqlite,
    default_uri,
    short_http_retries,
    store_lock,
)
from qdet.tracking.summary import SUMMARY, numeric_metrics, shown, split_summary

__all__ = [
    "TrackingUnavailable",
    "default_uri",
    "check_reachable",
    "check_sqlite",
    "store_lock",
    "short_http_retries",
    "git",
    "git_commit",
    "pipeline_key",
    "StageRun",
    "process_tags",
    "process_alive",
    "NoRun",
    "SUMMARY",
    "split_summary",
    "numeric_metrics",
    "shown",
]
