"""Experiment tracking: the loop reports to a tracker; nothing reads it back to decide a round."""

from alloop.tracking.base import NullTracker, RoundReport, Tracker
from alloop.tracking.mlflow_tracker import (
    DEFAULT_TRACKING_URI,
    MlflowTracker,
    MlflowWriter,
    is_unreachable,
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
    "Tracker",
    "TrackingUnavailableWarning",
    "is_unreachable",
    "resolve_tracking_uri",
]
