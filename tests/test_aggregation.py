"""Aggregating several annotators' answers: votes, majority, latest, Dawid–Skene, agreement."""

import math
from fractions import Fraction as F
from itertools import product

import numpy as np
import pytest

from alloop.aggregation import (
    agreement_metrics,
    agreement_with,
    dawid_skene,
    latest_label,
    majority_vote,
    pairwise_kappa,
    votes,
)
from alloop.records import Answer

# ----------------------------------------------------------------------------- votes


def test_latest_answer_per_annotator_is_the_vote_and_skips_abstain():
    log = [
        ("x", "ann", "cat"),
        ("x", "bob", "dog"),
        ("x", "ann", "dog"),  # ann changed her mind (undo / relabel)
        ("y", "ann", "cat"),
        Answer("y", None, "ann", kind="skip"),  # then skipped it: she abstains on y
        Answer("y", "cat", "bob", kind="unsure"),  # unsure carries no label even if one is set
        Answer("z", "bird", "bob"),
    ]
    assert votes(log) == {"x": {"bob": "dog", "ann": "dog"}, "z": {"bob": "bird"}}


def test_majority_counts_annotators_not_answers():
    # ann says cat three times (relabels); bob and cy say dog: two annotators against one.
    log = [("x", "ann", "cat")] * 3 + [("x", "bob", "dog"), ("x", "cy", "dog")]
    assert majority_vote(log) == {"x": "dog"}


def test_majority_ties_go_to_the_most_recent_vote():
    log = [("x", "a", 1), ("x", "b", 2), ("y", "a", 2), ("y", "b", 1)]
    assert majority_vote(log) == {"x": 2, "y": 1}
    # A vote that is replaced no longer counts for recency: a re-answers x with 1, now latest.
    assert majority_vote([*log, ("x", "a", 1)]) == {"x": 1, "y": 1}
    # Three-way tie among three annotators: the latest of them wins.
    assert majority_vote([("z", "a", 0), ("z", "b", 1), ("z", "c", 2)]) == {"z": 2}


def test_latest_label_rule_for_a_single_annotator():
    log = [("x", "a", 1), ("y", "a", 0), ("x", "a", 2), ("y", "a", None)]
    assert latest_label(log) == {"x": 2}  # y's latest answer is a skip: no label
    # Several annotators: another's skip does not remove a label.
    assert latest_label([("x", "a", 1), ("x", "b", None)]) == {"x": 1}
    assert latest_label([("x", "a", 1), ("x", "b", 0)]) == {"x": 0}


def test_bad_triples_are_named():
    with pytest.raises(ValueError, match=r"\(item_id, annotator, label\); got \('x', 1\)"):
        votes([("x", 1)])


# ----------------------------------------------------------------------------- Dawid–Skene

HAND = [
    ("i1", "A", 0), ("i1", "B", 0), ("i1", "C", 0),
    ("i2", "A", 1), ("i2", "B", 1), ("i2", "C", 1),
    ("i3", "A", 0), ("i3", "B", 0), ("i3", "C", 1),
    ("i4", "A", 1), ("i4", "B", 0),
]


def test_one_em_iteration_matches_the_hand_computation():
    """Worked by hand with fractions (no smoothing), starting from the vote shares.

    T0 = i1 (1, 0), i2 (0, 1), i3 (2/3, 1/3), i4 (1/2, 1/2); column sums 13/6 and 11/6.
    M-step: p = (13/24, 11/24).
      A: true 0 → said 0: 1 + 2/3, said 1: 1/2        → (10/13, 3/13)
         true 1 → said 0: 1/3,     said 1: 1 + 1/2    → (2/11, 9/11)
      B: true 0 → said 0: 1 + 2/3 + 1/2               → (1, 0)
         true 1 → said 0: 1/3 + 1/2, said 1: 1        → (5/11, 6/11)
      C: true 0 → said 0: 1, said 1: 2/3              → (3/5, 2/5)
         true 1 → said 1: 1 + 1/3                     → (0, 1)
    E-step (joint p_k Π π):
      i1: 13/24·10/13·1·3/5 = 1/4   vs 11/24·2/11·5/11·0 = 0      → (1, 0)
      i2: 13/24·3/13·0·2/5 = 0      vs 11/24·9/11·6/11·1 = 9/44   → (0, 1)
      i3: 13/24·10/13·1·2/5 = 1/6   vs 11/24·2/11·5/11·1 = 5/132  → (22/27, 5/27)
      i4: 13/24·3/13·1 = 1/8        vs 11/24·9/11·5/11 = 15/88    → (11/26, 15/26)
    """
    r = dawid_skene(HAND, smoothing=0.0, max_iter=1)
    assert r.items == ["i1", "i2", "i3", "i4"] and r.annotators == ["A", "B", "C"]
    np.testing.assert_allclose(r.priors, [13 / 24, 11 / 24], atol=1e-12)
    expected_confusion = [
        [[10 / 13, 3 / 13], [2 / 11, 9 / 11]],
        [[1, 0], [5 / 11, 6 / 11]],
        [[3 / 5, 2 / 5], [0, 1]],
    ]
    np.testing.assert_allclose(r.confusion, expected_confusion, atol=1e-12)
    np.testing.assert_allclose(
        r.posterior, [[1, 0], [0, 1], [22 / 27, 5 / 27], [11 / 26, 15 / 26]], atol=1e-12
    )
    assert r.labels == {"i1": 0, "i2": 1, "i3": 0, "i4": 1}
    expected_ll = sum(math.log(v) for v in (F(1, 4), F(9, 44), F(1, 6) + F(5, 132), F(1, 8) + F(15, 88)))
    assert r.log_likelihood == pytest.approx(expected_ll, abs=1e-12)
    assert r.posterior_of("i3") == pytest.approx({0: 22 / 27, 1: 5 / 27})


def random_log(rng, n_items=40, annotators=("a", "b", "c", "d"), K=3, p_answer=0.8):
    truth = rng.integers(K, size=n_items)
    log = []
    for i in range(n_items):
        for a in annotators:
            if rng.random() < p_answer:
                label = truth[i] if rng.random() < 0.7 else rng.integers(K)
                log.append((f"i{i}", a, int(label)))
    return log


def brute_force_joint(log, classes, priors, confusion, annotators):
    """p_k Π_a π_a[k, answer] by explicit loops, per item."""
    items = list(dict.fromkeys(item for item, _, _ in log))
    said = {(item, a): label for item, a, label in log}
    joint = {}
    for item in items:
        row = []
        for k in range(len(classes)):
            value = priors[k]
            for j, a in enumerate(annotators):
                if (item, a) in said:
                    value *= confusion[j][k][classes.index(said[(item, a)])]
            row.append(value)
        joint[item] = row
    return joint


def test_converged_fit_is_a_fixed_point_of_em_computed_by_brute_force():
    rng = np.random.default_rng(3)
    log = random_log(rng)
    alpha = 0.5
    r = dawid_skene(log, smoothing=alpha, tol=1e-12, max_iter=5000)
    assert r.converged
    K, items = len(r.classes), r.items
    # E-step by enumeration: the posterior is Bayes' rule under the returned parameters.
    joint = brute_force_joint(log, r.classes, r.priors, r.confusion, r.annotators)
    for i, item in enumerate(items):
        total = sum(joint[item])
        np.testing.assert_allclose(r.posterior[i], [v / total for v in joint[item]], atol=1e-9)
    # M-step by explicit counting: the parameters are the smoothed expected counts.
    said = {(item, a): label for item, a, label in log}
    for j, a in enumerate(r.annotators):
        for k in range(K):
            counts = [alpha] * K
            for i, item in enumerate(items):
                if (item, a) in said:
                    counts[r.classes.index(said[(item, a)])] += r.posterior[i, k]
            np.testing.assert_allclose(r.confusion[j, k], np.array(counts) / sum(counts), atol=1e-8)
    prior_counts = [alpha + r.posterior[:, k].sum() for k in range(K)]
    np.testing.assert_allclose(r.priors, np.array(prior_counts) / sum(prior_counts), atol=1e-8)
    # The reported log-likelihood is the brute-force one.
    assert r.log_likelihood == pytest.approx(sum(math.log(sum(v)) for v in joint.values()), abs=1e-9)


def test_em_never_lowers_the_likelihood():
    rng = np.random.default_rng(4)
    log = random_log(rng, n_items=30)
    lls = []
    for iters in range(1, 16):
        r = dawid_skene(log, smoothing=0.0, max_iter=iters, tol=0.0)
        joint = brute_force_joint(log, r.classes, r.priors, r.confusion, r.annotators)
        lls.append(sum(math.log(sum(v)) for v in joint.values()))
    assert all(b >= a - 1e-9 for a, b in zip(lls, lls[1:])), lls
    assert lls[-1] > lls[0]


def test_dawid_skene_beats_majority_with_one_bad_annotator():
    rng = np.random.default_rng(0)
    n, K = 300, 3
    truth = rng.integers(K, size=n)
    log = []
    for i in range(n):
        for a in ("good1", "good2"):  # right 70% of the time, else another class at random
            wrong = [c for c in range(K) if c != truth[i]]
            label = truth[i] if rng.random() < 0.7 else rng.choice(wrong)
            log.append((f"i{i}", a, int(label)))
        # Systematically shifted: says (true + 1) mod K nine times out of ten.
        label = (truth[i] + 1) % K if rng.random() < 0.9 else truth[i]
        log.append((f"i{i}", "bad", int(label)))

    def accuracy(labels):
        return np.mean([labels[f"i{i}"] == truth[i] for i in range(n)])

    ds = dawid_skene(log)
    mv = majority_vote(log)
    assert accuracy(ds.labels) > accuracy(mv) + 0.2
    assert accuracy(ds.labels) > 0.85
    bad = ds.annotators.index("bad")
    assert ds.confusion[bad].argmax(axis=1).tolist() == [1, 2, 0]  # the shift is learned
    assert ds.accuracy_of("bad") < 0.2 < 0.6 < ds.accuracy_of("good1")


def test_dawid_skene_input_checks_and_edge_cases():
    with pytest.raises(ValueError, match=r"labels \[7\] outside classes \[0, 1\]"):
        dawid_skene([("x", "a", 7)], classes=[0, 1])
    with pytest.raises(ValueError, match="smoothing must be"):
        dawid_skene([], smoothing=-1)
    empty = dawid_skene([], classes=["a", "b"])
    assert empty.labels == {} and empty.posterior.shape == (0, 2)
    # One annotator, no disagreement possible: DS returns their labels.
    single = dawid_skene([("x", "a", "cat"), ("y", "a", "dog")], classes=["cat", "dog", "bird"])
    assert single.labels == {"x": "cat", "y": "dog"}
    # Skips are abstentions here too.
    assert dawid_skene([("x", "a", "cat"), ("x", "b", None)]).annotators == ["a"]


# ----------------------------------------------------------------------------- agreement


def test_agreement_with_reference_counts_by_hand():
    log = [("x", "a", 1), ("y", "a", 0), ("z", "a", 1), ("x", "b", 1), ("y", "b", 1), ("w", "b", 0)]
    stats = agreement_with(log, {"x": 1, "y": 0, "z": 0})  # w is not in the reference
    assert (stats["a"].n, stats["a"].agreed) == (3, 2)
    assert (stats["b"].n, stats["b"].agreed) == (2, 1)
    assert stats["a"].rate == pytest.approx(2 / 3)


def kappa_by_hand(ya, yb):
    labels = sorted(set(ya) | set(yb))
    n = len(ya)
    po = sum(a == b for a, b in zip(ya, yb)) / n
    pe = sum((ya.count(c) / n) * (yb.count(c) / n) for c in labels)
    return (po - pe) / (1 - pe)


def test_pairwise_kappa_matches_the_formula_and_needs_overlap():
    rng = np.random.default_rng(1)
    items = [f"i{k}" for k in range(30)]
    a = rng.integers(3, size=30).tolist()
    b = [x if rng.random() < 0.6 else int(rng.integers(3)) for x in a]
    log = [(i, "ann", x) for i, x in zip(items, a)] + [(i, "bob", x) for i, x in zip(items, b)]
    log += [(i, "cy", 0) for i in items[:5]]  # overlaps 5 items only
    kappas = pairwise_kappa(log, min_overlap=10)
    assert set(kappas) == {("ann", "bob")}
    assert kappas[("ann", "bob")] == pytest.approx(kappa_by_hand(a, b), abs=1e-12)
    assert set(pairwise_kappa(log, min_overlap=5)) == {("ann", "bob"), ("ann", "cy"), ("bob", "cy")}
    # Both constant and equal: chance agreement is 1, kappa undefined.
    same = [(i, "p", "x") for i in items] + [(i, "q", "x") for i in items]
    assert math.isnan(pairwise_kappa(same)[("p", "q")])


def test_agreement_metrics_are_flat_and_mlflow_safe():
    items = [f"i{k}" for k in range(12)]
    log = [(i, "ann@lab", k % 2) for k, i in enumerate(items)]
    log += [(i, "bob", k % 2 if k < 9 else 1 - k % 2) for k, i in enumerate(items)]
    reference = majority_vote(log)
    metrics = agreement_metrics(log, reference)
    assert metrics["annotator.ann_lab.answers"] == 12
    # They disagree on the last 3 items; each tie goes to bob, whose votes came later.
    assert metrics["annotator.bob.agreement"] == 1.0
    assert metrics["annotator.ann_lab.agreement"] == 9 / 12
    assert set(metrics) == {
        "annotator.ann_lab.answers", "annotator.ann_lab.agreement", "annotator.bob.answers",
        "annotator.bob.agreement", "kappa.ann_lab.bob", "kappa.mean",
    }


def test_aggregates_over_all_label_patterns_of_three_annotators():
    """Exhaustive check of majority vote on every pattern of three binary votes."""
    for pattern in product([0, 1], repeat=3):
        log = [("x", name, v) for name, v in zip("abc", pattern)]
        assert majority_vote(log) == {"x": int(sum(pattern) >= 2)}
