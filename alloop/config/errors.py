"""The one error type of the config and its one formatter.

Every problem reads ``  where: message (got VALUE)``, under a line naming the file::

    experiments/x.yaml is invalid:
      loop.batch_size: Input should be greater than 0 (got -3)
"""

from __future__ import annotations

import typing
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError


class ConfigError(ValueError):
    """A config that cannot be used; the message names the file and lists every problem found."""


#: the tag values of the sections holding a union chosen by a field (``model.kind``,
#: ``oracle.kind``, ``scoring.backend``): pydantic puts the tag into an error's location
#: (``oracle.files.dir``); the message shows the path a user writes (``oracle.dir``).
TAGS = {
    "model": {"logistic", "linear", "mlp", "sklearn", "hierarchical"},
    "oracle": {"simulated", "terminal", "files", "web", "label-studio"},
    "scoring": {"local", "ray"},
}


DISCRIMINATOR = {"model": "kind", "oracle": "kind", "scoring": "backend"}


def _where(loc: tuple[Any, ...], prefix: str | None) -> str:
    parts = [str(p) for p in loc]
    if len(parts) >= 2 and parts[1] in TAGS.get(parts[0], ()):
        del parts[1]
    return ".".join([*([prefix] if prefix else []), *parts])


def describe_validation_error(
    error: ValidationError, prefix: str | None = None, fields: Iterable[str] | None = None
) -> list[str]:
    """``  where: message (got VALUE)`` for each problem pydantic found.

    ``prefix`` names the section the model was validated from (``"compare"``); ``fields``,
    when given, are listed as the valid names in an unknown-field message.

    Examples
    --------
    >>> from alloop.config import ExperimentConfig
    >>> try:
    ...     ExperimentConfig.model_validate({"name": "x", "data": {"source": "a.csv"},
    ...                                      "loop": {"batch_size": -3}})
    ... except ValidationError as exc:
    ...     describe_validation_error(exc)
    ['  loop.batch_size: Input should be greater than 0 (got -3)']
    """
    lines = []
    for e in error.errors():
        where = _where(tuple(e["loc"]), prefix)
        message = e["msg"].removeprefix("Value error, ")
        shown: Any = e.get("input")
        if e["type"] == "union_tag_invalid":  # a kind no config class has
            where += "." + e["ctx"]["discriminator"].strip("'")
            message = "Input should be " + _choices(e["ctx"]["expected_tags"])
            shown = e["ctx"]["tag"]
        elif e["type"] == "missing" and len(e["loc"]) >= 3 and _where(e["loc"][:2], None) != ".".join(
                map(str, e["loc"][:2])):  # a field one kind needs: say which kind
            section, tag = e["loc"][0], e["loc"][1]
            message = f"{section}.{DISCRIMINATOR[section]} {tag!r} needs {where}"
        elif e["type"] == "extra_forbidden":
            known = fields or _kind_fields(tuple(e["loc"]))
            message = (
                "unknown field (expected one of: " + ", ".join(known) + ")" if known
                else "unknown field (check its spelling; see README 'Config')"
            )
            if not fields and known:
                message = f"{e['loc'][0]}.{DISCRIMINATOR[e['loc'][0]]} {e['loc'][1]!r} has no such field; " + message
        hidden = e["type"] == "missing" or not e["loc"] or isinstance(shown, dict)
        got = "" if hidden else f" (got {shown!r})"
        lines.append(f"  {where or '(top level)'}: {message}{got}")
    return lines


def _kind_fields(loc: tuple[Any, ...]) -> list[str]:
    """The fields of the kind an unknown key was found in (``oracle.kind: web``), else []."""
    if len(loc) < 3 or loc[1] not in TAGS.get(loc[0], ()):
        return []
    from alloop.config.experiment import ExperimentConfig

    disc = DISCRIMINATOR[loc[0]]
    for member in typing.get_args(ExperimentConfig.model_fields[loc[0]].annotation):
        if loc[1] in typing.get_args(member.model_fields[disc].annotation):
            return [name for name in member.model_fields if name != disc]
    return []


def _choices(expected: str) -> str:
    """``'a', 'b' or 'c'`` from pydantic's ``'a', 'b', 'c'``."""
    names = [n.strip() for n in expected.split(",")]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def config_error(origin: str, problems: Iterable[str]) -> ConfigError:
    """The :class:`ConfigError` of ``origin`` (a file or "config") listing ``problems``."""
    return ConfigError(f"{origin} is invalid:\n" + "\n".join(problems))


def renamed_fields(data: Mapping[str, Any], renames: Mapping[tuple[str, ...], str]) -> list[str]:
    """Problems for each old spelling in ``data``: ``  old.path: renamed; write NEW``."""
    problems = []
    for path, fix in renames.items():
        node: Any = data
        for key in path:
            node = node.get(key) if isinstance(node, Mapping) else None
        if node is not None:
            problems.append(f"  {'.'.join(path)}: this field is gone; {fix}")
    return problems
