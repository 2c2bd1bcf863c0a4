"""Compare a rerun's learning curves with reference ones, run by run and round by round.

For each (model, strategy, seed) of the rerun: the largest |ΔRMSE/user| over the rounds both
have, the first round that differs by more than ``--tol``, the largest |Δs| (s, or s_0 and s_1),
and the RMSE at 2 / 5 / 10 / 20 labels per user, reference → rerun. The output is a markdown
table.

    .venv/bin/python experiments/multiuser/compare.py REFERENCE.csv RERUN.csv [RERUN2.csv ...]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ratings import CHECKPOINTS  # noqa: E402

KEY = ["model", "strategy", "seed"]


def at_checkpoints(curve: pd.DataFrame) -> list[float]:
    """RMSE/user at the rounds nearest to each checkpoint (labels per user)."""
    out = []
    for c in CHECKPOINTS:
        i = (curve["labels_per_user"] - c).abs().idxmin()
        out.append(float(curve.loc[i, "rmse_user_mean"]))
    return out


def compare(reference: pd.DataFrame, rerun: pd.DataFrame, tol: float = 1e-5) -> pd.DataFrame:
    """One row per rerun (model, strategy, seed) that the reference also has."""
    rows = []
    for key, new in rerun.groupby(KEY, sort=False):
        ref = reference[(reference[KEY] == pd.Series(key, index=KEY)).all(axis=1)]
        if ref.empty:
            continue
        new, ref = new.set_index("round"), ref.set_index("round")
        rounds = new.index.intersection(ref.index)
        diff = (new.loc[rounds, "rmse_user_mean"] - ref.loc[rounds, "rmse_user_mean"]).abs()
        s_cols = [c for c in ("s", "s0", "s1") if c in new and c in ref and new[c].notna().all()]
        ds = max(float((new.loc[rounds, c] - ref.loc[rounds, c]).abs().max()) for c in s_cols)
        first = diff.index[diff > tol]
        rows.append({
            **dict(zip(KEY, key, strict=True)),
            "rounds": len(rounds),
            "max |ΔRMSE|": f"{diff.max():.1e}",
            f"first round > {tol:g}": "—" if first.empty else int(first.min()),
            "max |Δs|": f"{ds:.1e}",
            "RMSE at 2 / 5 / 10 / 20, reference → rerun": " / ".join(
                f"{a:.4f}" for a in at_checkpoints(ref.reset_index())
            ) + " → " + " / ".join(f"{b:.4f}" for b in at_checkpoints(new.reset_index())),
        })
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("reference", type=Path)
    parser.add_argument("rerun", type=Path, nargs="+")
    parser.add_argument("--tol", type=float, default=1e-5)
    args = parser.parse_args(argv)
    rerun = pd.concat([pd.read_csv(p) for p in args.rerun], ignore_index=True)
    print(compare(pd.read_csv(args.reference), rerun, args.tol).to_markdown(index=False))


if __name__ == "__main__":
    main()
