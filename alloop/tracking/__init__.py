"""Experiment tracking: the loop reports to a tracker; nothing reads it back to decide a round."""

from alloop.tracking.base import NullTracker, RoundReport, Tracker
from alloop.tracking.mlflow_tracker import DEFAULT_TRACKING_URI, MlflowTracker, resolve_tracking_uri

__all__ = [
    "DEFAULT_TRACKING_URI",
    "MlflowTracker",
    "NullTracker",
    "RoundReport",
    "Tracker",
    "resolve_tracking_uri",
]
