"""Query engine: turn pool scores into a batch."""
