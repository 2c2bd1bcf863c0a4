"""``portfolio``: choose among strategies online with an adversarial bandit (ALBL, batch mode).

Active learning by learning (Hsu & Lin, 2015) treats each strategy as an arm. Each round:

1. every arm proposes its batch B_k (its own scores and batch rule);
2. Exp3 (Auer et al., 2002) draws arm a from p_k = (1 − γ) w_k / Σ w + γ / K and the batch B_a
   is asked; an asked item x had query probability q(x) = Σ_k p_k [x ∈ B_k];
3. at the next round the refitted model f is scored by the importance-weighted accuracy on
   every item asked so far, self-normalised so that it lies in [0, 1] as Exp3 needs:
   r = Σ_i [f(x_i) = y_i] / q_i / Σ_i 1 / q_i;
4. arm a is credited r / p_a (an unbiased estimate of its reward): w_a ← w_a exp(γ r / (p_a K)).

Why this reward: it is ALBL's, an estimate of the model's accuracy on the pool's distribution
that needs no labels beyond those asked (no validation split); batch mode differs from ALBL
only in that q(x) counts batch membership. Its caveat, as in ALBL: the queried items are also
training items, so it measures fit on them as well as generalisation.

What that caveat costs, measured on the benchmark configs (seed 0, default arms margin,
core-set, random, γ = 0.1): on breast cancer the logistic model fits every asked item, so the
reward is 1.0 in all 14 rounds; on credit cards it is 0.60-0.78 and moves with the model, not
with the arm. The bandit therefore gets no signal that separates the arms, and Exp3 learns
slowly anyway (at γ = 0.1 a reward of 1 for the best arm and 0 for the others still leaves
p_best ≈ 0.44 after 15 rounds of 3 arms: its log-weight gains γ / K per round in expectation):
the last round's probabilities were 0.32-0.34 on both sets, the arm sequence was the same on
both, and on 4 seeds the portfolio's accuracy / ROC-AUC nAUC is that of a
uniform mixture of its arms (γ = 1; identical runs on 2 seeds of 4 per set). That is why it
falls behind its best arm when one arm dominates. No alternative reward was adopted: a
held-out reward has the same common level, and no reward in [0, 1] moves Exp3 at γ = 0.1 far
from uniform within 15 rounds.

:class:`Exp3` is the bandit alone (pure state + update, tested on synthetic bandits);
:class:`Portfolio` holds the round state and gives a :class:`~strategies.base.Strategy` whose
``report`` the loop logs each round (``portfolio_arm``, ``portfolio_p_<arm>``). That state (the
log-weights, the arm awaiting its reward and its probability, q(x) of every asked item, keyed
by a hash of its features, and the last report) is the strategy's
:class:`~strategies.base.StrategyMemory`: the loop saves it in the label store after each
round's scores, before the round's requests, and restores it before the next scores, so
``alloop run --resume``, a new :class:`~alloop.ActiveLoop` on the store, and ``query``/``teach``
after a kill continue exactly as an uninterrupted run. The arm draw needs no saved generator:
it uses the round's ``rng``, which the loop keys by (seed, round).

In a config: ``strategy: {name: portfolio, params: {arms: [margin, coreset, sld], gamma: 0.1}}``;
the loop builds a fresh :class:`Portfolio` per run (:attr:`Strategy.fresh`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import Field, field_validator

from strategies._order import n_picks, order_scores
from strategies.base import Strategy, StrategyOptions
from strategies.registry import register


def exp3_probabilities(log_weights: np.ndarray, gamma: float) -> np.ndarray:
    """Exp3's arm law (1 − γ) w / Σ w + γ / K from log-weights (stable for large weights).

    Examples
    --------
    >>> exp3_probabilities(np.zeros(4), 0.1).tolist()
    [0.25, 0.25, 0.25, 0.25]
    """
    w = np.exp(log_weights - np.max(log_weights))
    return (1.0 - gamma) * w / w.sum() + gamma / w.size


@dataclass
class Exp3:
    """Exp3 over ``n_arms`` arms with exploration rate ``gamma`` ∈ (0, 1]; rewards in [0, 1]."""

    n_arms: int
    gamma: float = 0.1
    log_weights: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        if self.n_arms < 1:
            raise ValueError(f"a bandit needs at least one arm; got n_arms={self.n_arms}")
        if not 0.0 < self.gamma <= 1.0:
            raise ValueError(f"gamma must be in (0, 1]; got {self.gamma}")
        self.log_weights = np.zeros(self.n_arms)

    def probabilities(self) -> np.ndarray:
        return exp3_probabilities(self.log_weights, self.gamma)

    def choose(self, rng: np.random.Generator) -> tuple[int, np.ndarray]:
        """An arm drawn from the current law, and that law."""
        p = self.probabilities()
        return int(rng.choice(self.n_arms, p=p)), p

    def update(self, arm: int, reward: float, p_arm: float) -> None:
        """Credit ``arm`` (drawn with probability ``p_arm``) with ``reward`` ∈ [0, 1]."""
        if not 0.0 <= reward <= 1.0:
            raise ValueError(f"Exp3 rewards must lie in [0, 1]; got {reward}")
        self.log_weights[arm] += self.gamma * reward / (p_arm * self.n_arms)


def importance_weighted_accuracy(correct: np.ndarray, q: np.ndarray) -> float:
    """Σ correct_i / q_i / Σ 1 / q_i: the self-normalised importance-weighted accuracy."""
    w = 1.0 / np.asarray(q, dtype=np.float64)
    return float((np.asarray(correct, dtype=np.float64) * w).sum() / w.sum())


class Portfolio:
    """An ALBL-style bandit over registered strategies, usable as a loop strategy.

    Parameters
    ----------
    arms : sequence of str
        Registered strategy names (e.g. ``["margin", "coreset", "sld"]``).
    gamma : float
        Exp3 exploration rate.
    params : dict, optional
        Options per arm: ``{"sld": {"tangent_method": "cg"}}``.

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
    ...                   settings, classes=[0, 1, 2])
    >>> sorted(c for c in loop.run().curve.columns if c.startswith("portfolio"))
    ['portfolio_arm', 'portfolio_p_margin', 'portfolio_p_random']
    """

    def __init__(
        self, arms: Sequence[str], gamma: float = 0.1, params: dict[str, dict[str, Any]] | None = None
    ) -> None:
        import strategies

        self.arms = [strategies.get(name) for name in arms]
        if len({a.name for a in self.arms}) != len(self.arms):
            raise ValueError(f"portfolio arms must be distinct; got {list(arms)}")
        self.params = {a.name: a.check_options((params or {}).get(a.name, {})) for a in self.arms}
        unknown = set(params or {}) - {a.name for a in self.arms}
        if unknown:
            raise ValueError(f"portfolio params name strategies that are not arms: {sorted(unknown)}")
        self.bandit = Exp3(len(self.arms), gamma)
        self.restore(None)

    def strategy(self) -> Strategy:
        """The portfolio as a strategy (its needs are the union of its arms')."""
        needs = tuple(sorted({n for a in self.arms for n in a.needs}))
        names = ", ".join(a.name for a in self.arms)
        return Strategy("portfolio", f"Exp3 bandit over {names} (ALBL reward).", self.score,
                        needs, report=self.report, memory=self)

    def report(self) -> dict[str, float]:
        """The last round's arm (index into ``arms``) and arm probabilities."""
        return dict(self._report)

    def state(self) -> dict[str, Any]:
        """The bandit's state after the last scores, as JSON (see :class:`StrategyMemory`).

        Examples
        --------
        >>> sorted(Portfolio(["margin", "random"]).state())
        ['arms', 'asked', 'log_weights', 'pending', 'report', 'rewards']
        """
        return {"arms": [a.name for a in self.arms],
                "log_weights": self.bandit.log_weights.tolist(),
                "asked": [[key, q] for key, q in self._asked],
                "pending": None if self._pending is None else list(self._pending),
                "report": dict(self._report), "rewards": list(self.rewards)}

    def restore(self, state: dict[str, Any] | None) -> None:
        """Continue from a :meth:`state` (None: uniform weights, nothing asked yet)."""
        if state is None:
            self.bandit.log_weights = np.zeros(len(self.arms))
            self._asked: list[tuple[str, float]] = []  # (feature hash of an asked item, its q)
            self._pending: tuple[int, float] | None = None  # (arm, its probability) awaiting reward
            self._report: dict[str, float] = {}
            self.rewards: list[float] = []
            return
        names = [a.name for a in self.arms]
        if state["arms"] != names:
            raise ValueError(
                f"the stored portfolio state is over arms {state['arms']}, this portfolio's are "
                f"{names}: resume with the arms the run started with, or start over (--fresh)"
            )
        self.bandit.log_weights = np.asarray(state["log_weights"], dtype=np.float64)
        self._asked = [(str(key), float(q)) for key, q in state["asked"]]
        pending = state["pending"]
        self._pending = None if pending is None else (int(pending[0]), float(pending[1]))
        self._report = {k: float(v) for k, v in state["report"].items()}
        self.rewards = [float(r) for r in state["rewards"]]

    def _reward(self, model: Any, X_labeled: Any, y_labeled: Any) -> float | None:
        rows = np.asarray(X_labeled, dtype=np.float64)
        labeled = {_key(x): (x, y) for x, y in zip(rows, y_labeled, strict=True)}
        answered = [(*labeled[key], q) for key, q in self._asked if key in labeled]
        if not answered:
            return None
        X = np.stack([x for x, _, _ in answered])
        correct = model.predict(X) == np.asarray([y for _, y, _ in answered])
        return importance_weighted_accuracy(correct, [q for _, _, q in answered])

    def score(self, model: Any, X_pool: Any, **context: Any) -> np.ndarray:
        """Update the bandit with the last round's reward, draw an arm, return its batch."""
        from alloop.engine.select import select_batch

        rng = context.get("rng") or np.random.default_rng(0)
        if self._pending is not None and context.get("X_labeled") is not None:
            reward = self._reward(model, context["X_labeled"], context["y_labeled"])
            if reward is not None:
                self.bandit.update(*self._pending[:1], reward, self._pending[1])
                self.rewards.append(reward)
        n, k = X_pool.shape[0], n_picks(context, X_pool.shape[0])
        arm, p = self.bandit.choose(rng)
        batches = []
        for a in self.arms:  # every arm's batch, for the query probabilities q(x)
            scores = a.score(model, X_pool, **context, **self.params[a.name])
            batches.append(select_batch(scores, k, a.batch, X_pool=X_pool,
                                        X_labeled=context.get("X_labeled"), rng=rng))
        q = np.zeros(n)
        for prob, batch in zip(p, batches, strict=True):
            q[batch] += prob
        X_dense = np.asarray(X_pool, dtype=np.float64)
        self._asked += [(_key(X_dense[i]), float(q[i])) for i in batches[arm]]
        self._pending = (arm, float(p[arm]))
        self._report = {"portfolio_arm": float(arm),
                        **{f"portfolio_p_{a.name}": float(pa) for a, pa in zip(self.arms, p, strict=True)}}
        return order_scores(batches[arm], n)


def _key(row: np.ndarray) -> str:
    """An asked item's name in the state: a hash of its float64 features (the scorer sees no ids)."""
    return hashlib.sha1(np.ascontiguousarray(row, dtype=np.float64).tobytes()).hexdigest()


class PortfolioOptions(StrategyOptions):
    """The portfolio's options: its arms, Exp3's exploration rate, and options per arm."""

    arms: tuple[str, ...] = Field(("margin", "coreset", "random"), min_length=1,
                                  description="registered strategies to choose among")
    gamma: float = Field(0.1, gt=0, le=1, description="Exp3 exploration rate")
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
    "Exp3 bandit over other strategies (ALBL's importance-weighted-accuracy reward, batch mode).",
    _built_by_the_loop,
    options=PortfolioOptions,
    fresh=lambda options: Portfolio(options["arms"], options["gamma"], options["params"]).strategy(),
))
