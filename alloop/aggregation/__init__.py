"""Combining answers from several annotators (pure functions over the raw answer log).

The raw answers stay in the label store; aggregates are derived from them and never written
over them.
"""

from alloop.aggregation.agreement import (
    Agreement,
    agreement_metrics,
    agreement_with,
    pairwise_kappa,
)
from alloop.aggregation.dawid_skene import DawidSkeneResult, dawid_skene
from alloop.aggregation.majority import latest_label, majority_vote, vote_counts, votes
from alloop.aggregation.rules import LABEL_RULES, aggregate

__all__ = [
    "LABEL_RULES",
    "Agreement",
    "DawidSkeneResult",
    "aggregate",
    "agreement_metrics",
    "agreement_with",
    "dawid_skene",
    "latest_label",
    "majority_vote",
    "pairwise_kappa",
    "vote_counts",
    "votes",
]
