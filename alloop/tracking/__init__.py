"""Experiment tracking: the loop reports to a tracker; nothing reads it back to decide a round."""

from alloop.tracking.base import NullTracker, RoundReport, RunRecord, Tracker
from alloop.tracking.mlflow_http import is_unreachable
from alloop.tracking.mlflow_tracker import (
    DEFAULT_TRACKING_URI,
    MlflowTracker,
    MlflowWriter,
    resolve_tracking_uri,
)
from alloop.tracking.resilient import Backoff, ResilientTracker, TrackingUnavailableWarning

__all__ = [
    "DEFAULT_TRACKING_URI",
    "Backoff",
    "MlflowTracker",
    "MlflowWriter",
    "NullTracker",
    "ResilientTracker",
    "RoundReport",
    "RunRecord",
    "Tracker",
    "TrackingUnavailableWarning",
    "is_unreachable",
    "resolve_tracking_uri",
]
