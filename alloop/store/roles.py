"""A least-privilege PostgreSQL role for alloop: it may read and add history, nothing else.

alloop's triggers refuse UPDATE / DELETE / TRUNCATE of history, but a table's *owner* can
``ALTER TABLE ... DISABLE TRIGGER`` or drop them. So the store is created by one role (the
owner, e.g. a DBA's) and the loops connect as another, the *writer*, which is granted only:

- ``USAGE`` on the store's schema;
- ``SELECT, INSERT`` on the history tables (answers, requests, assignments, rounds);
- ``SELECT, INSERT, UPDATE`` on ``meta`` (the run id, fingerprint and writer lease change).

The writer owns nothing, so it cannot alter, disable or drop a trigger, and it has no UPDATE,
DELETE or TRUNCATE privilege on history even with the triggers gone. ``alloop store init-roles``
runs :func:`grant_statements`; docs/label-store.md shows the same SQL.
"""

from __future__ import annotations

import re

from alloop.store.schema import HISTORY

_ROLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def grant_statements(writer: str, schema: str = "public") -> list[str]:
    """The SQL (run as the store's owner, after the store exists) giving ``writer`` exactly
    what a loop needs.

    Examples
    --------
    >>> grant_statements("alloop_writer")[1]
    'GRANT USAGE ON SCHEMA "public" TO "alloop_writer"'
    """
    for name, what in ((writer, "role"), (schema, "schema")):
        if not _ROLE.match(name):
            raise ValueError(f"{what} name {name!r} is not a plain SQL name; use letters, digits "
                             "and underscores, starting with a letter")
    tables = ", ".join(f'"{schema}".{t}' for t in (*HISTORY, "meta"))
    history = ", ".join(f'"{schema}".{t}' for t in HISTORY)
    return [
        f'REVOKE ALL ON {tables} FROM "{writer}"',
        f'GRANT USAGE ON SCHEMA "{schema}" TO "{writer}"',
        f'GRANT SELECT, INSERT ON {history} TO "{writer}"',
        f'GRANT SELECT, INSERT, UPDATE ON "{schema}".meta TO "{writer}"',
    ]
