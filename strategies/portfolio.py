"""``portfolio``: choose among strategies online, crediting each by what its labels are worth.

Each round, every arm's share of the batch is decided by what the items it chose in the round
before add to the model, measured on the validation split:

1. **Credit (forward, on validation data).** Let B_a be the items arm a asked last round and
   L the labels before that round. A clone of the model is fitted on L, and one on L ∪ B_a for
   every arm; the arm's gain is g_a = (L_val(L) − L_val(L ∪ B_a)) / |B_a|, the validation loss
   (log-loss, or squared error for regression) each of its new labels saves. The round's gains
   become rewards in [0, 1] by min–max over the arms (best 1, worst 0), so every round counts
   the same however small the gains have become. Rewards are discounted: the running sums are
   multiplied by δ (``discount``, 0.5) before the round's reward is added, so the leader follows
   what the arms are worth now.
2. **Choice (follow the leader).** The leader is the arm with the highest discounted mean
   reward; the batch's slots go to arm a with probability p_a = (1 − γ)·[a leads] + γ / K
   (ties share the lead), after one slot for every arm (while slots last), so every arm has a
   gain to measure next round.
3. **Batch.** Arm a contributes its first n_a picks (its own scores and batch rule) that no
   earlier arm took; arms are asked in the order leader first.

Why forward credit and not leave-items-out (leaving m of *all* of an arm's earlier items out of
the current fit, which this module held until now): measured on digits, seeds 0–5
(``experiments/benchmarks/portfolio_leaders.py``), leave-items-out ranked random first in 47 %
of rounds though margin beats random on every seed, and the portfolio's mean accuracy over the
rounds was 0.8277 against margin's 0.8620 alone. Items asked early are worth most whoever asked
them, and a leave-out of old items measures what they are worth to a model that has since
learned the same thing from others. The forward credit measures each arm's newest items on the
labels they were added to, as the arm's next batch will be: 0.8502 on the same seeds, margin
first in 62 % of rounds. Before that the module held ALBL's design (Exp3 rewarded by the
importance-weighted accuracy on the asked items, Hsu & Lin 2015): that reward was 1.0 in all 14
rounds on breast cancer and Exp3, seeing one arm per round, stayed near uniform.
Every arm is scored against the *same* base fit, which removes the level all arms share, and the
feedback is full-information (every arm is measured every round). The price: 1 + K refits per
round, one slot per arm per round, and a validation split.

The state across rounds (the arm and round that asked each item, keyed by a hash of its
features, and each arm's discounted reward sum and count) is the strategy's
:class:`~strategies.base.StrategyMemory`: the loop saves it in the label store after each
round's scores, so ``alloop run --resume`` and ``query``/``teach`` after a kill continue as an
uninterrupted run. Randomness comes from the round's ``rng``, which the loop keys by
(seed, round).

In a config: ``strategy: {name: portfolio, params: {arms: [margin, coreset, sld], gamma: 0.1}}``;
the loop builds a fresh :class:`Portfolio` per run (:attr:`Strategy.fresh`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import Field, field_validator

from strategies._order import n_picks, order_scores
from strategies.base import Strategy, StrategyOptions
from strategies.registry import register


def leader_probabilities(reward_sum: np.ndarray, reward_count: np.ndarray, gamma: float) -> np.ndarray:
    """Each arm's share of a batch: (1 − γ) split among the arms of highest mean reward, + γ/K.

    Arms never rewarded (count 0) cannot lead; with no rewards at all the law is uniform.

    Examples
    --------
    >>> leader_probabilities(np.array([3.0, 1.0]), np.array([3, 3]), 0.1).round(6).tolist()
    [0.95, 0.05]
    >>> leader_probabilities(np.zeros(4), np.zeros(4), 0.1).tolist()
    [0.25, 0.25, 0.25, 0.25]
    """
    k = reward_sum.size
    seen = reward_count > 0
    if not seen.any():
        return np.full(k, 1.0 / k)
    mean = np.where(seen, reward_sum / np.maximum(reward_count, 1), -np.inf)
    lead = np.isclose(mean, mean.max(), rtol=0.0, atol=1e-12)
    return (1.0 - gamma) * lead / lead.sum() + gamma / k


def minmax_rewards(gains: np.ndarray) -> np.ndarray:
    """A round's gains as rewards in [0, 1]: best 1, worst 0, NaN (no estimate) kept; all 0.5
    when the estimated gains are equal. Fewer than two estimates give no rewards (all NaN).

    Examples
    --------
    >>> minmax_rewards(np.array([0.2, np.nan, 0.0, 0.1])).tolist()
    [1.0, nan, 0.0, 0.5]
    """
    gains = np.asarray(gains, dtype=np.float64)
    ok = np.isfinite(gains)
    if ok.sum() < 2:
        return np.full(gains.shape, np.nan)
    low, high = gains[ok].min(), gains[ok].max()
    if high - low <= 1e-15 * max(abs(high), abs(low), 1.0):
        return np.where(ok, 0.5, np.nan)
    return np.where(ok, (gains - low) / (high - low), np.nan)


def allocate(p: np.ndarray, k: int, rng: np.random.Generator, first: Sequence[int] = ()) -> np.ndarray:
    """Slots per arm for a batch of ``k``: one each for the arms in ``first`` (in a random order,
    while slots last), the rest drawn from ``p``.

    Examples
    --------
    >>> allocate(np.array([1.0, 0.0]), 5, np.random.default_rng(0), first=[1]).tolist()
    [4, 1]
    """
    counts = np.zeros(p.size, dtype=np.int64)
    first = list(rng.permutation(np.asarray(first, dtype=np.int64)))[:k]
    counts[first] += 1
    if k > len(first):
        counts += rng.multinomial(k - len(first), p)
    return counts


def validation_loss(model: Any, X_val: Any, y_val: Any, classes: np.ndarray | None) -> float:
    """Mean log-loss (classification, over ``classes``) or mean squared error of a fitted model."""
    from strategies.committee import aligned_proba

    if classes is None:
        return float(np.mean((np.asarray(model.predict(X_val), dtype=np.float64)
                              - np.asarray(y_val, dtype=np.float64)) ** 2))
    proba = aligned_proba(model, X_val, classes)
    y_val = np.asarray(y_val)
    column = np.searchsorted(classes, y_val).clip(0, classes.size - 1)
    p_true = np.where(classes[column] == y_val, proba[np.arange(y_val.size), column], 0.0)
    return float(-np.mean(np.log(np.clip(p_true, 1e-12, None))))


def forward_gains(
    model: Any,
    X_base: np.ndarray,
    y_base: np.ndarray,
    X_val: Any,
    y_val: Any,
    additions: Sequence[tuple[np.ndarray, np.ndarray]],
) -> np.ndarray:
    """Per addition (X_a, y_a), the validation loss each of its labels saves over the base labels.

    A clone of ``model`` is fitted on the base rows and one on the base rows plus each addition;
    the gain is (L_val(base) − L_val(base ∪ a)) / |a|. An empty addition gives NaN, and so does
    every addition when the base has fewer than two rows (or one class).

    Examples
    --------
    >>> from alloop.models import LinearGLM
    >>> X = np.arange(12.0).reshape(6, 2); y = X @ [1.0, -1.0]
    >>> shifted = (X[3:], y[3:] + 5.0)  # three wrong labels hurt; an empty addition has no gain
    >>> forward_gains(LinearGLM(s=0.0), X[:3], y[:3], X, y, [shifted, (X[:0], y[:0])]).round(4).tolist()
    [-3.6582, nan]
    """
    from strategies.committee import class_set, fit_clone

    classify = getattr(model, "task", None) == "classification"
    gains = np.full(len(additions), np.nan)
    if X_base.shape[0] < 2 or (classify and np.unique(y_base).size < 2):
        return gains
    every_y = [y_base, np.asarray(y_val)] + [np.asarray(y_a) for _, y_a in additions]
    classes = class_set(model, np.concatenate(every_y)) if classify else None
    base = validation_loss(fit_clone(model, X_base, y_base, classes), X_val, y_val, classes)
    for j, (X_a, y_a) in enumerate(additions):
        if len(y_a) == 0:
            continue
        added = fit_clone(model, np.concatenate([X_base, X_a]), np.concatenate([y_base, y_a]), classes)
        gains[j] = (base - validation_loss(added, X_val, y_val, classes)) / len(y_a)
    return gains


class Portfolio:
    """A portfolio over registered strategies, usable as a loop strategy (see the module doc).

    Parameters
    ----------
    arms : sequence of str
        Registered strategy names (e.g. ``["margin", "coreset", "sld"]``).
    gamma : float
        Share of the batch spread evenly over the arms, whoever leads.
    params : dict, optional
        Options per arm: ``{"sld": {"tangent_method": "cg"}}``.
    discount : float
        Factor δ in [0, 1] on the reward sums before each round's rewards are added (1: plain
        mean over all rounds; 0: the last round alone).

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from alloop import ActiveLoop, LoopSettings, Pool
    >>> from alloop.models import SoftmaxGLM
    >>> from oracles import SimulatedOracle
    >>> X, y = load_iris(return_X_y=True)
    >>> pool = Pool(X)
    >>> portfolio = Portfolio(["margin", "random"])
    >>> settings = LoopSettings(initial=9, batch_size=3, rounds=2, progress=False)
    >>> loop = ActiveLoop(pool, SoftmaxGLM(), portfolio.strategy(), SimulatedOracle(dict(zip(pool.ids, y))),
    ...                   settings, classes=[0, 1, 2], X_val=X[::5], y_val=y[::5])
    >>> sorted(c for c in loop.run().curve.columns if c.startswith("portfolio"))
    ['portfolio_arm', 'portfolio_p_margin', 'portfolio_p_random']
    """

    def __init__(
        self,
        arms: Sequence[str],
        gamma: float = 0.1,
        params: Mapping[str, Mapping[str, Any]] | None = None,
        discount: float = 0.5,
    ) -> None:
        import strategies

        self.arms = [strategies.get(name) for name in arms]
        if len({a.name for a in self.arms}) != len(self.arms):
            raise ValueError(f"portfolio arms must be distinct; got {list(arms)}")
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1]; got {gamma}")
        if not 0.0 <= discount <= 1.0:
            raise ValueError(f"discount must be in [0, 1]; got {discount}")
        unknown = set(params or {}) - {a.name for a in self.arms}
        if unknown:
            raise ValueError(f"portfolio params name strategies that are not arms: {sorted(unknown)}")
        self.params = {a.name: a.check_options((params or {}).get(a.name, {})) for a in self.arms}
        self.gamma, self.discount = float(gamma), float(discount)
        self.restore(None)

    def strategy(self) -> Strategy:
        """The portfolio as a strategy: its arms' needs, plus labeled and validation data."""
        needs = tuple(sorted({n for a in self.arms for n in a.needs} | {"labeled", "validation"}))
        names = ", ".join(a.name for a in self.arms)
        return Strategy("portfolio", f"Follow-the-leader over {names} (forward validation credit).",
                        self.score, needs, report=self.report, memory=self)

    def report(self) -> dict[str, float]:
        """The last round's leading arm (index into ``arms``) and each arm's share of slots."""
        return dict(self._report)

    def state(self) -> dict[str, Any]:
        """The portfolio's state after the last scores, as JSON (see :class:`StrategyMemory`).

        Examples
        --------
        >>> sorted(Portfolio(["margin", "random"]).state())
        ['arms', 'asked', 'credit', 'report', 'reward_count', 'reward_sum', 'rewards', 'round']
        """
        return {"arms": [a.name for a in self.arms], "credit": "forward", "round": self._round,
                "asked": [[k, a, r] for k, a, r in self._asked],
                "reward_sum": self.reward_sum.tolist(), "reward_count": self.reward_count.tolist(),
                "report": dict(self._report), "rewards": [list(r) for r in self.rewards]}

    def restore(self, state: dict[str, Any] | None) -> None:
        """Continue from a :meth:`state` (None: nothing asked, no rewards)."""
        k = len(self.arms)
        if state is None:
            self._round = 0  # scores computed so far
            self._asked: list[tuple[str, int, int]] = []  # (feature hash, arm, round asked)
            self.reward_sum, self.reward_count = np.zeros(k), np.zeros(k)
            self._report: dict[str, float] = {}
            self.rewards: list[list[float | None]] = []  # per round, per arm (None: no estimate)
            return
        names = [a.name for a in self.arms]
        if state.get("arms") != names or state.get("credit") != "forward":
            raise ValueError(
                f"the stored portfolio state is over arms {state.get('arms')} (or from an older "
                f"portfolio), this portfolio's arms are {names}: resume with the arms and the "
                "alloop version the run started with, or start over (--fresh)"
            )
        self._round = int(state["round"])
        self._asked = [(str(key), int(arm), int(r)) for key, arm, r in state["asked"]]
        self.reward_sum = np.asarray(state["reward_sum"], dtype=np.float64)
        self.reward_count = np.asarray(state["reward_count"], dtype=np.float64)
        self._report = {key: float(v) for key, v in state["report"].items()}
        self.rewards = [list(r) for r in state["rewards"]]

    def _credit(self, model: Any, context: Mapping[str, Any]) -> None:
        X_val, y_val = context.get("X_val"), context.get("y_val")
        last = self._round - 1
        if X_val is None or context.get("X_labeled") is None or last < 0:
            return
        X_l = np.asarray(context["X_labeled"], dtype=np.float64)
        y_l = np.asarray(context["y_labeled"])
        row = {_key(x): i for i, x in enumerate(X_l)}
        new = [[] for _ in self.arms]  # rows labeled from last round's asks, per arm
        for key, arm, r in self._asked:
            if r == last and key in row:
                new[arm].append(row[key])
        base = np.ones(X_l.shape[0], dtype=bool)
        base[[i for rows in new for i in rows]] = False
        additions = [(X_l[rows], y_l[rows]) for rows in (sorted(set(g)) for g in new)]
        gains = forward_gains(model, X_l[base], y_l[base], X_val, y_val, additions)
        rewards = minmax_rewards(gains)
        if np.isfinite(rewards).any():
            ok = np.isfinite(rewards)
            self.reward_sum *= self.discount
            self.reward_count *= self.discount
            self.reward_sum[ok] += rewards[ok]
            self.reward_count[ok] += 1.0
            self.rewards.append([float(r) if np.isfinite(r) else None for r in rewards])

    def score(self, model: Any, X_pool: Any, **context: Any) -> np.ndarray:
        """Credit the arms, split the batch among them, return the combined batch as scores."""
        from alloop.engine.select import select_batch

        rng = context.get("rng") or np.random.default_rng(0)
        n, k = X_pool.shape[0], n_picks(context, X_pool.shape[0])
        self._credit(model, context)
        p = leader_probabilities(self.reward_sum, self.reward_count, self.gamma)
        counts = allocate(p, k, rng, first=range(len(self.arms)))
        X_dense = np.asarray(X_pool, dtype=np.float64)
        taken: list[int] = []
        for arm in np.argsort(-p, kind="stable"):  # the leader first
            if counts[arm] == 0:
                continue
            a = self.arms[arm]
            scores = a.score(model, X_pool, **context, **self.params[a.name])
            batch = select_batch(scores, k, a.batch, X_pool=X_pool,
                                 X_labeled=context.get("X_labeled"), rng=rng)
            picks = [int(i) for i in batch if int(i) not in taken][: counts[arm]]
            taken += picks
            self._asked += [(_key(X_dense[i]), int(arm), self._round) for i in picks]
        self._round += 1
        self._report = {"portfolio_arm": float(np.argmax(p)),
                        **{f"portfolio_p_{a.name}": float(pa) for a, pa in zip(self.arms, p, strict=True)}}
        return order_scores(taken, n)


def _key(row: np.ndarray) -> str:
    """An asked item's name in the state: a hash of its float64 features (the scorer sees no ids)."""
    return hashlib.sha1(np.ascontiguousarray(row, dtype=np.float64).tobytes()).hexdigest()


class PortfolioOptions(StrategyOptions):
    """The portfolio's options: its arms, the evenly spread share γ, the discount δ, options per arm."""

    arms: tuple[str, ...] = Field(("margin", "coreset", "random"), min_length=1,
                                  description="registered strategies to choose among")
    gamma: float = Field(0.1, ge=0, le=1, description="share of each batch spread evenly over the arms")
    discount: float = Field(0.5, ge=0, le=1,
                            description="factor on the reward sums before each round's rewards are added")
    params: dict[str, dict[str, Any]] = Field(default_factory=dict, description="options per arm")

    @field_validator("arms")
    @classmethod
    def _registered(cls, arms: tuple[str, ...]) -> tuple[str, ...]:
        import strategies

        for name in arms:
            if name == "portfolio":
                raise ValueError("a portfolio cannot be its own arm")
            try:
                strategies.get(name)
            except KeyError as exc:  # pydantic reports ValueErrors: same message, listing names
                raise ValueError(exc.args[0]) from None
        return arms


def _built_by_the_loop(model: Any, X_pool: Any, **_: Any) -> np.ndarray:
    raise RuntimeError(
        "the portfolio keeps state across rounds: use Portfolio(arms).strategy(), or give "
        "'portfolio' by name to ActiveLoop / a config, which build one per run"
    )


register(Strategy(
    "portfolio",
    "Follow-the-leader over other strategies, crediting each by what its last labels add on validation data.",
    _built_by_the_loop,
    needs=("labeled", "validation"),
    options=PortfolioOptions,
    fresh=lambda options: Portfolio(options["arms"], options["gamma"], options["params"],
                                    options["discount"]).strategy(),
))
