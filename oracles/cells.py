"""Spreadsheet-safe CSV cells: the OWASP CSV-injection guard, and undoing it on read.

A spreadsheet runs a cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return as a formula (OWASP, "CSV Injection"). alloop writes such a cell with a leading ``'``,
which spreadsheets show as text, and strips it again when it reads a file back, so any text
(an item id such as ``=1``, a label ``-x``) round-trips through request → answers. A cell that
already starts with ``'`` followed by one of those characters (or by another ``'``) gets one
more ``'``, so undoing is exact. Plain negative numbers (``-0.5``, ``-1e-3``: a score) are
not formulas and are written as they are; ``+3`` is guarded, as a spreadsheet would drop its ``+``.
"""

from __future__ import annotations

import re

#: characters that start a formula in a spreadsheet cell
TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def _marked(value: str) -> bool:
    """Whether ``value`` starts with the guard's quote, as written by :func:`guard_cell`."""
    return value[:1] == "'" and (value[1:2] in TRIGGERS or value[1:2] == "'")


def guard_cell(value: str) -> str:
    """The cell as written: formula-starting text prefixed with ``'``.

    Examples
    --------
    >>> [guard_cell(v) for v in ["=1+2", "-x", "@a", "\\tx", "-0.5", "cat", "'=y"]]
    ["'=1+2", "'-x", "'@a", "'\\tx", '-0.5', 'cat', "''=y"]
    """
    if (value[:1] in TRIGGERS and not _NUMBER.match(value)) or _marked(value):
        return "'" + value
    return value


def unguard_cell(value: str) -> str:
    """Undo :func:`guard_cell`: ``unguard_cell(guard_cell(v)) == v`` for every string ``v``.

    Examples
    --------
    >>> unguard_cell("'=1+2"), unguard_cell("''=y"), unguard_cell("'cat")
    ('=1+2', "'=y", "'cat")
    """
    return value[1:] if _marked(value) else value
