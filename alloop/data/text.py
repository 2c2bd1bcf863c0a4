"""Text columns as features: the vectoriser a config names, fitted on a column of texts."""

from __future__ import annotations

import copy
import importlib
import inspect
from collections.abc import Mapping
from typing import Any

import numpy as np
import scipy.sparse as sp


def build_vectorizer(spec: Any = None) -> Any:
    """A fresh text vectoriser from a config mapping, an existing object, or the default.

    Parameters
    ----------
    spec : None, mapping or vectoriser
        ``None`` gives ``TfidfVectorizer()``. A mapping ``{"class": "sklearn.….ClassName",
        "params": {...}}`` builds that class; only scikit-learn classes may be named, so a config
        file cannot make the loader run arbitrary code. An object with ``fit_transform`` is
        copied (the caller's object is never fitted in place).

    Examples
    --------
    >>> vec = build_vectorizer({"class": "sklearn.feature_extraction.text.CountVectorizer",
    ...                         "params": {"binary": True}})
    >>> type(vec).__name__, vec.binary
    ('CountVectorizer', True)
    """
    if spec is None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        return TfidfVectorizer()
    if isinstance(spec, Mapping):
        unknown = set(spec) - {"class", "params"}
        if unknown or "class" not in spec:
            raise ValueError(
                "a vectoriser config is {'class': 'sklearn.feature_extraction.text.TfidfVectorizer',"
                f" 'params': {{...}}}}; got keys {sorted(map(str, spec))!r}"
            )
        params = spec.get("params") or {}
        if not isinstance(params, Mapping):
            raise ValueError(f"vectoriser 'params' must be a mapping; got {params!r}")
        cls = _sklearn_class(spec["class"])
        try:
            return cls(**params)
        except TypeError as exc:
            raise ValueError(f"bad params for {spec['class']}: {exc}") from exc
    if hasattr(spec, "fit_transform") and hasattr(spec, "transform"):
        return copy.deepcopy(spec)
    raise TypeError(
        "vectorizer must be None, a {'class': ..., 'params': ...} mapping or an object with "
        f"fit_transform and transform; got {type(spec).__name__}"
    )


def _sklearn_class(path: Any) -> type:
    """The scikit-learn transformer class at a dotted path; anything else is refused."""
    if not isinstance(path, str):
        raise ValueError(f"vectoriser 'class' must be a dotted path string; got {path!r}")
    module_name, _, attr = path.rpartition(".")
    parts = path.split(".")
    if parts[0] != "sklearn" or not attr or any(p.startswith("_") or not p for p in parts):
        raise ValueError(
            f"only public scikit-learn classes (sklearn.…) may be built from config; got {path!r}"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"unknown vectoriser class {path!r}: no module {module_name!r}") from exc
    cls = getattr(module, attr, None)
    if not inspect.isclass(cls) or not cls.__module__.startswith("sklearn"):
        raise ValueError(f"unknown vectoriser class {path!r}: {module_name} has no class {attr!r}")
    if not (hasattr(cls, "fit_transform") and hasattr(cls, "transform")):
        raise ValueError(f"{path!r} is not a transformer (it has no fit_transform/transform)")
    return cls


def _vectorise(texts: list[str], spec: Any, column: str) -> tuple[Any, list[str]]:
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    vectorizer = build_vectorizer(spec)
    try:  # a vectoriser fitted elsewhere (or a stateless one) keeps its vocabulary
        check_is_fitted(vectorizer)
        features = vectorizer.transform(texts)
    except (NotFittedError, TypeError):
        features = vectorizer.fit_transform(texts)
    if hasattr(vectorizer, "get_feature_names_out"):
        try:
            names = [str(v) for v in vectorizer.get_feature_names_out()]
        except (AttributeError, NotFittedError, ValueError):  # e.g. HashingVectorizer
            names = [f"{column}[{j}]" for j in range(features.shape[1])]
    else:
        names = [f"{column}[{j}]" for j in range(features.shape[1])]
    if sp.issparse(features):
        features = sp.csr_matrix(features, dtype=np.float64)
    return features, names
