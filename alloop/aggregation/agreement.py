"""How much annotators agree: with an aggregate, and with each other (Cohen's kappa)."""

from __future__ import annotations

import re
import warnings
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np

from alloop.aggregation.majority import votes as collect_votes


@dataclass(frozen=True)
class Agreement:
    """An annotator's agreement with a reference labeling."""

    annotator: str
    n: int  # items the annotator voted on that the reference labels
    agreed: int

    @property
    def rate(self) -> float:
        return self.agreed / self.n if self.n else float("nan")


def agreement_with(
    answers: Iterable[Any], reference: Mapping[str, Hashable]
) -> dict[str, Agreement]:
    """annotator → agreement of their votes with ``reference`` (e.g. the aggregate labels).

    An annotator's own vote is part of an aggregate it is compared with, so with few
    annotators per item the rate is biased upwards; compare annotators with each other, or use
    :func:`pairwise_kappa`, for an unbiased view.

    Examples
    --------
    >>> log = [("x", "a", 1), ("x", "b", 0), ("y", "a", 1), ("y", "b", 1)]
    >>> {a: s.rate for a, s in agreement_with(log, {"x": 1, "y": 1}).items()}
    {'a': 1.0, 'b': 0.5}
    """
    n: dict[str, int] = {}
    agreed: dict[str, int] = {}
    for item, per in collect_votes(answers).items():
        if item not in reference:
            continue
        for annotator, label in per.items():
            n[annotator] = n.get(annotator, 0) + 1
            agreed[annotator] = agreed.get(annotator, 0) + int(label == reference[item])
    return {a: Agreement(a, n[a], agreed[a]) for a in sorted(n)}


def pairwise_kappa(answers: Iterable[Any], min_overlap: int = 10) -> dict[tuple[str, str], float]:
    """(annotator, annotator) → Cohen's kappa on the items both labeled.

    Pairs sharing fewer than ``min_overlap`` items are left out (kappa on a handful of items
    says little). Kappa is NaN where it is undefined: both gave one and the same label
    throughout, so chance agreement is 1.

    Examples
    --------
    >>> log = [(str(i), "a", i % 2) for i in range(10)] + [(str(i), "b", i % 2) for i in range(10)]
    >>> pairwise_kappa(log)
    {('a', 'b'): 1.0}
    """
    from sklearn.metrics import cohen_kappa_score

    table = collect_votes(answers)
    by_annotator: dict[str, dict[str, Hashable]] = {}
    for item, per in table.items():
        for annotator, label in per.items():
            by_annotator.setdefault(annotator, {})[item] = label
    out: dict[tuple[str, str], float] = {}
    for a, b in combinations(sorted(by_annotator), 2):
        shared = sorted(by_annotator[a].keys() & by_annotator[b].keys())
        if len(shared) < max(min_overlap, 1):
            continue
        ya = [by_annotator[a][i] for i in shared]
        yb = [by_annotator[b][i] for i in shared]
        labels = sorted(set(ya) | set(yb), key=lambda c: (str(type(c)), c))
        if len(labels) < 2:
            out[(a, b)] = float("nan")
            continue
        index = {c: k for k, c in enumerate(labels)}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            kappa = cohen_kappa_score([index[c] for c in ya], [index[c] for c in yb],
                                      labels=list(range(len(labels))))
        out[(a, b)] = float(kappa)
    return out


def _metric_name(text: str) -> str:
    # MLflow metric names allow letters, digits, _ - . / and spaces.
    return re.sub(r"[^A-Za-z0-9_./-]", "_", text)


def agreement_metrics(
    answers: Iterable[Any], reference: Mapping[str, Hashable], min_overlap: int = 10
) -> dict[str, float]:
    """Flat per-annotator metrics for a tracker (e.g. MLflow ``log_metrics``).

    ``annotator.<id>.answers`` (votes), ``annotator.<id>.agreement`` (rate of agreement with
    ``reference``), ``kappa.<id>.<id>`` per pair with enough overlap, and ``kappa.mean`` over
    the defined pairs.
    """
    answers = list(answers)
    out: dict[str, float] = {}
    for annotator, stat in agreement_with(answers, reference).items():
        name = _metric_name(annotator)
        out[f"annotator.{name}.answers"] = float(stat.n)
        out[f"annotator.{name}.agreement"] = stat.rate
    kappas = pairwise_kappa(answers, min_overlap)
    for (a, b), kappa in kappas.items():
        out[f"kappa.{_metric_name(a)}.{_metric_name(b)}"] = kappa
    defined = [k for k in kappas.values() if np.isfinite(k)]
    if defined:
        out["kappa.mean"] = float(np.mean(defined))
    return out
