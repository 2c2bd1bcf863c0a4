"""Which arm the portfolio follows, round by round, beside its arms run alone.

    python experiments/benchmarks/portfolio_leaders.py experiments/benchmarks/digits.yaml \
        --seeds 0 1 2 3 4 5

Runs each seed of the config (no MLflow; label stores in a temporary folder) with every arm of
the portfolio alone and with the portfolio, and prints per seed the mean test metric over the
rounds (nAUC of the curve's first metric) and the arm the portfolio's credit ranked first in each round,
then the share of rounds each arm led. This is a diagnosis of the credit, not a benchmark: the page's figures come from
``alloop compare`` and build_results.py.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's code, not an installed one
from alloop.compare.stats import normalized_auc  # noqa: E402
from alloop.config.loader import parse_config, read_yaml  # noqa: E402
from alloop.experiment import build_loop  # noqa: E402


def run(raw: dict, seed: int, name: str, params: dict, folder: Path):
    data = {**raw, "seed": seed, "strategy": {"name": name, "params": params},
            "store": {"path": str(folder / f"{name}-{seed}-{len(list(folder.iterdir()))}.sqlite")}}
    loop = build_loop(parse_config(data, "portfolio_leaders"), progress=False, track=False)
    try:
        return loop.run().curve, loop.strategy.memory
    finally:
        loop.store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--no-arms", action="store_true", help="run only the portfolio")
    parser.add_argument("--params", default="{}", help="portfolio options as JSON, e.g. '{\"discount\": 1}'")
    args = parser.parse_args()
    raw = read_yaml(args.config)
    raw.pop("compare", None)
    metric = raw["loop"]["metrics"][0]
    params = json.loads(args.params)
    arms = list(params.pop("arms", ["margin", "coreset", "random"]))
    led = np.zeros(len(arms))
    means: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for arm in [] if args.no_arms else arms:
                curve, _ = run(raw, seed, arm, {}, Path(tmp))
                means.setdefault(arm, []).append(normalized_auc(curve["labels"], curve[metric]))
                print(f"seed {seed} {arm:>9s}: nAUC {metric} {means[arm][-1]:.4f}", flush=True)
            curve, memory = run(raw, seed, "portfolio", {"arms": arms, **params}, Path(tmp))
            means.setdefault("portfolio", []).append(normalized_auc(curve["labels"], curve[metric]))
            leaders = [int(np.nanargmax([np.nan if r is None else r for r in rs])) for rs in memory.rewards]
            np.add.at(led, leaders, 1)
            print(f"seed {seed} {'portfolio':>9s}: nAUC {metric} {means['portfolio'][-1]:.4f}, best credit "
                  f"per round: {' '.join(arms[i] for i in leaders)}; followed: "
                  f"{' '.join(arms[int(i)] for i in curve['portfolio_arm'].dropna())}", flush=True)
    print(f"\nmean over {len(args.seeds)} seeds of the nAUC of {metric}:")
    for name, values in means.items():
        print(f"  {name:>9s}: {np.mean(values):.4f}")
    share = ", ".join(f"{a} {c / led.sum():.0%}" for a, c in zip(arms, led, strict=True))
    print(f"rounds in which each arm had the best credit: {share}")


if __name__ == "__main__":
    main()
