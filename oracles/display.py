"""Showing an item to a person: text as text, pixels as a picture, a row as a table.

:class:`QueryDisplay` turns a :class:`~alloop.records.Query` into a :class:`Display`: plain data
(no terminal codes) that the terminal oracle formats with rich and the file-exchange oracle
writes into its request file. Pixel arrays are saved as PNG files a browser or image viewer can
open, and also drawn as a small text-art preview for terminals.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from alloop.records import Query

#: darkest last; one character per grey level of the text-art preview.
SHADES = " .:-=+*#%@"


def _native(value: Any) -> Any:
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(()).item()
    return value.item() if isinstance(value, np.generic) else value


def format_value(value: Any) -> str:
    """A short human form of a value: floats to 4 significant digits, the rest as ``str``."""
    value = _native(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def as_image(raw: Any) -> np.ndarray | None:
    """``raw`` as an image array ``(h, w)`` or ``(h, w, 3|4)``, or None if it is not one.

    A 2-D numeric array is an image, as is a flat one whose length is a square (16 or more
    values: a digit stored as a 64-vector shows as 8×8).
    """
    if isinstance(raw, str | bytes | Mapping) or raw is None:
        return None
    try:
        a = np.asarray(raw)
    except (TypeError, ValueError):
        return None
    if a.dtype.kind not in "biuf" or a.size == 0:
        return None
    if a.ndim == 2 and min(a.shape) >= 2:
        return a.astype(np.float64)
    if a.ndim == 3 and a.shape[2] in (3, 4) and min(a.shape[:2]) >= 2:
        return a.astype(np.float64)
    if a.ndim == 1 and a.size >= 16:
        side = math.isqrt(a.size)
        if side * side == a.size:
            return a.reshape(side, side).astype(np.float64)
    return None


def _unit(pixels: np.ndarray) -> np.ndarray:
    lo, hi = float(np.nanmin(pixels)), float(np.nanmax(pixels))
    if hi <= lo:
        return np.zeros_like(pixels, dtype=np.float64)
    return (pixels - lo) / (hi - lo)


def save_png(pixels: np.ndarray, path: str | Path, min_size: int = 160) -> Path:
    """Save an image array as a PNG, scaled up by whole pixels to at least ``min_size`` pixels.

    Grey images are drawn dark-on-light (high values dark, as ink). The file is written to a
    temporary name and renamed, so a viewer never opens half a file.
    """
    from matplotlib.image import imsave

    a = np.asarray(pixels, dtype=np.float64)
    scale = max(1, math.ceil(min_size / max(1, min(a.shape[:2]))))
    big = np.repeat(np.repeat(a, scale, axis=0), scale, axis=1)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if big.ndim == 2:
        imsave(tmp, _unit(big), cmap="gray_r", vmin=0.0, vmax=1.0, format="png")
    else:
        imsave(tmp, _unit(big), format="png")
    os.replace(tmp, path)
    return path


def text_art(pixels: np.ndarray, max_width: int = 32) -> str:
    """A text drawing of an image: one character per grey level, two per pixel across.

    Images wider than ``max_width`` pixels are shrunk by averaging blocks.
    """
    a = np.asarray(pixels, dtype=np.float64)
    if a.ndim == 3:
        a = a[..., :3].mean(axis=2)
    factor = max(1, math.ceil(a.shape[1] / max_width))
    if factor > 1:
        h, w = (a.shape[0] // factor) * factor, (a.shape[1] // factor) * factor
        a = a[:h, :w].reshape(h // factor, factor, w // factor, factor).mean(axis=(1, 3))
    levels = np.rint(_unit(a) * (len(SHADES) - 1)).astype(int)
    return "\n".join("".join(SHADES[v] * 2 for v in row).rstrip() for row in levels)


def table_rows(
    row: Any, feature_names: Sequence[str] | None = None, max_rows: int = 40
) -> list[tuple[str, str]]:
    """(feature name, value) pairs of a mapping, a pandas row, or a feature vector.

    A sparse vector lists its non-zero entries only. Past ``max_rows`` a last row says how many
    were left out.
    """
    if hasattr(row, "to_dict") and not isinstance(row, np.ndarray):
        row = row.to_dict()
    if isinstance(row, Mapping):
        pairs = [(str(k), v) for k, v in row.items()]
    else:
        if sp.issparse(row):
            coo = sp.coo_matrix(row.reshape(1, -1))
            index, values = coo.col.tolist(), coo.data.tolist()
        else:
            values = np.asarray(row).reshape(-1).tolist()
            index = list(range(len(values)))
        names = list(feature_names) if feature_names is not None else None
        pairs = [(names[i] if names is not None and i < len(names) else f"x{i}", v)
                 for i, v in zip(index, values)]
    shown = [(name, format_value(v)) for name, v in pairs[:max_rows]]
    if len(pairs) > max_rows:
        shown.append(("…", f"{len(pairs) - max_rows} more"))
    return shown


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[:80] or "item"


@dataclass(frozen=True)
class Display:
    """What a person sees for one query (plain data; the oracle decides how to format it)."""

    item_id: str
    kind: Literal["text", "image", "table", "empty"]
    text: str | None = None
    image_path: Path | None = None
    preview: str | None = None
    table: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    prediction: str | None = None
    score: float | None = None
    proposed: str | None = None

    def fields(self) -> dict[str, str]:
        """Flat display fields for a request file: ``text``, ``image`` or one column per feature."""
        if self.kind == "text":
            return {"text": self.text or ""}
        if self.kind == "image":
            return {"image": str(self.image_path) if self.image_path else ""}
        return dict(self.table)

    def facts(self) -> list[tuple[str, str]]:
        """``(name, text)`` of what is known about the item besides itself, in the order shown:
        ``prediction``, ``score`` (4 significant digits) and ``proposed``, each when set. Each
        medium words them its own way.

        Examples
        --------
        >>> Display("a", "empty", prediction="cat", score=0.123456).facts()
        [('prediction', 'cat'), ('score', '0.1235')]
        """
        out = [("prediction", self.prediction),
               ("score", None if self.score is None else f"{self.score:.4g}"),
               ("proposed", self.proposed)]
        return [(name, text) for name, text in out if text is not None]

    def as_text(self) -> str:
        """A plain-text rendering (logs, pipes, tests)."""
        lines = [f"item {self.item_id}"]
        if self.kind == "text":
            lines.append(self.text or "")
        elif self.kind == "image":
            if self.preview:
                lines.append(self.preview)
            if self.image_path:
                lines.append(f"image: {self.image_path}")
        elif self.kind == "table":
            width = max(len(k) for k, _ in self.table)
            lines += [f"{k.ljust(width)}  {v}" for k, v in self.table]
        words = {"prediction": "model predicts: {}", "score": "query score: {}",
                 "proposed": "proposed label: {}"}
        lines += [words[name].format(text) for name, text in self.facts()]
        return "\n".join(lines)


class QueryDisplay:
    """Render queries for people.

    Parameters
    ----------
    image_dir : str or Path, optional
        Where PNG files of pixel items go (``round-<r>-item-<id>.png``). Without it images are
        shown only as text art.
    feature_names : sequence of str, optional
        Names for the entries of feature vectors (items without ``raw``).
    show_prediction, show_score : bool
        Include the current model's prediction and the strategy's score.
    max_features : int
        Rows of a feature table before the rest is summarised.
    max_text : int
        Characters of a text item before it is cut (the cut is marked).
    preview_width : int
        Widest text-art preview, in image pixels.

    Examples
    --------
    >>> show = QueryDisplay(show_score=False)
    >>> d = show(Query("r7", raw="The soup was cold.", prediction="negative"))
    >>> print(d.as_text())
    item r7
    The soup was cold.
    model predicts: negative
    >>> show(Query("p", raw={"age": 41, "bmi": 23.25})).table
    (('age', '41'), ('bmi', '23.25'))
    """

    def __init__(
        self,
        image_dir: str | Path | None = None,
        feature_names: Sequence[str] | None = None,
        *,
        show_prediction: bool = True,
        show_score: bool = True,
        max_features: int = 40,
        max_text: int = 4000,
        preview_width: int = 32,
    ) -> None:
        self.image_dir = None if image_dir is None else Path(image_dir)
        self.feature_names = None if feature_names is None else [str(n) for n in feature_names]
        self.show_prediction = show_prediction
        self.show_score = show_score
        self.max_features = max_features
        self.max_text = max_text
        self.preview_width = preview_width

    def __call__(self, query: Query) -> Display:
        return self.render(query)

    def render(self, query: Query) -> Display:
        """The :class:`Display` of one query (saving its PNG if it is an image)."""
        extras: dict[str, Any] = {
            "prediction": format_value(query.prediction)
            if self.show_prediction and query.prediction is not None else None,
            "score": float(query.score)
            if self.show_score and query.score is not None and np.isfinite(query.score) else None,
            "proposed": None if query.proposed_label is None else format_value(query.proposed_label),
        }
        raw = query.raw
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8", errors="replace")
        if isinstance(raw, str):
            text = raw if len(raw) <= self.max_text else raw[: self.max_text] + " […]"
            return Display(query.item_id, "text", text=text, **extras)
        pixels = as_image(raw)
        if pixels is not None:
            path = None
            if self.image_dir is not None:
                name = f"round-{query.round}-item-{_safe(query.item_id)}.png"
                path = save_png(pixels, self.image_dir / name)
            preview = text_art(pixels, self.preview_width)
            return Display(query.item_id, "image", image_path=path, preview=preview, **extras)
        source, names = (raw, self.feature_names) if raw is not None else (query.x, self.feature_names)
        if source is not None:
            rows = table_rows(source, names, self.max_features)
            if rows:
                return Display(query.item_id, "table", table=tuple(rows), **extras)
        return Display(query.item_id, "empty", **extras)
