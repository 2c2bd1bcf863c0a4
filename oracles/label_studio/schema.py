"""What a Label Studio project looks like to alloop: its labeling interface, tasks and results.

Pure functions over plain dicts (the JSON Label Studio speaks): building a labeling interface
for a label set, the task for a query (data, pre-annotation, alloop's bookkeeping in ``meta``),
and reading an annotation back as an answer. Nothing here talks to a server.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oracles.answers import AnswerError, AnswerParser, ParsedAnswer
from oracles.display import Display, as_image, save_png

#: the task ``meta`` key under which alloop keeps its bookkeeping.
META_KEY = "alloop"
#: data keys alloop adds to every task (shown by the interfaces it creates, sortable columns).
ITEM_KEY, SCORE_KEY, NOTE_KEY = "alloop_item", "alloop_score", "alloop_note"

#: the object tag and data key of an interface alloop creates, by display kind.
_OBJECT_FOR = {
    "text": ("Text", "text"),
    "empty": ("Text", "text"),
    "image": ("Image", "image"),
    "table": ("HyperText", "features"),
}


@dataclass(frozen=True)
class LabelSchema:
    """Where answers and data live in a project's labeling interface.

    ``control`` is the name of the Choices (classification) or Number (regression) tag,
    ``to_name`` the object tag it labels, ``object_type`` that tag's type (Text, Image,
    HyperText, ...) and ``data_key`` the task-data key it shows.
    """

    control: str
    control_type: str
    to_name: str
    object_type: str
    data_key: str
    choices: tuple[str, ...] = ()

    @property
    def result_type(self) -> str:
        return self.control_type.lower()


def label_config(
    kind: str,
    task: str = "classification",
    classes: Sequence[Any] | None = None,
    *,
    show_score: bool = True,
    show_note: bool = True,
) -> str:
    """The labeling interface (XML) for items shown as ``kind`` and the task's answers.

    Classification gets one required single choice over ``classes``, regression a required
    number. Header lines show the query score and a relabel note when asked for.

    Examples
    --------
    >>> print(label_config("text", classes=["ham", "spam"], show_score=False, show_note=False))
    <View>
      <Text name="text" value="$text"/>
      <Choices name="label" toName="text" choice="single" showInline="true" required="true">
        <Choice value="ham"/>
        <Choice value="spam"/>
      </Choices>
    </View>
    """
    if kind not in _OBJECT_FOR:
        raise ValueError(f"display kind must be one of {sorted(_OBJECT_FOR)}; got {kind!r}")
    tag, key = _OBJECT_FOR[kind]
    lines = ["<View>"]
    if show_score:
        lines.append(f'  <Header value="query score: ${SCORE_KEY}" size="6"/>')
    if show_note:
        lines.append(f'  <Header value="${NOTE_KEY}" size="6"/>')
    extra = ' inline="true"' if tag == "HyperText" else ""
    lines.append(f'  <{tag} name="{key}" value="${key}"{extra}/>')
    if task == "regression":
        lines.append(f'  <Number name="label" toName="{key}" required="true"/>')
    else:
        if not classes:
            raise ValueError("a classification interface needs the label set: pass classes=[...]")
        lines.append(
            f'  <Choices name="label" toName="{key}" choice="single" showInline="true" '
            'required="true">'
        )
        lines += [f'    <Choice value="{html.escape(str(c), quote=True)}"/>' for c in classes]
        lines.append("  </Choices>")
    lines.append("</View>")
    return "\n".join(lines)


def read_schema(parsed: Mapping[str, Any], task: str = "classification") -> LabelSchema:
    """The :class:`LabelSchema` of a project from its ``parsed_label_config``.

    Takes the Choices tag (classification) or Number tag (regression); one named ``label``
    wins when there are several.

    Raises
    ------
    ValueError
        When the interface has no such tag, naming the tags it has.
    """
    wanted = "Number" if task == "regression" else "Choices"
    controls = [(name, spec) for name, spec in (parsed or {}).items()
                if isinstance(spec, Mapping) and spec.get("type") == wanted]
    if not controls:
        found = sorted({str(s.get("type")) for s in (parsed or {}).values() if isinstance(s, Mapping)})
        raise ValueError(
            f"the project's labeling interface has no {wanted} tag (it has {found or 'none'}); "
            f"a {task} loop needs one: add <{wanted} name=\"label\" toName=...> to it, or leave "
            "project_id unset so that alloop creates a project"
        )
    name, spec = next((c for c in controls if c[0] == "label"), controls[0])
    inputs = list(spec.get("inputs") or [])
    to_names = list(spec.get("to_name") or [])
    if not inputs or not to_names:
        raise ValueError(f"the {wanted} tag {name!r} labels no object tag with a $data value")
    return LabelSchema(
        control=name, control_type=wanted, to_name=str(to_names[0]),
        object_type=str(inputs[0].get("type")), data_key=str(inputs[0].get("value")),
        choices=tuple(str(c) for c in spec.get("labels") or ()),
    )


def _html_table(rows: Sequence[tuple[str, str]]) -> str:
    cells = "".join(
        f"<tr><th style='text-align:left;padding-right:1em'>{html.escape(k)}</th>"
        f"<td>{html.escape(v)}</td></tr>"
        for k, v in rows
    )
    return f"<table>{cells}</table>"


def _png_data_uri(raw: Any) -> str:
    pixels = as_image(raw)
    if pixels is None:
        return ""
    with tempfile.TemporaryDirectory() as folder:
        path = save_png(pixels, Path(folder) / "item.png")
        data = path.read_bytes()
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def data_value(display: Display, raw: Any, object_type: str) -> Any:
    """What goes into the data key of an object tag of ``object_type`` for this display.

    Images are embedded as PNG data URIs (nothing to host), tables become an escaped HTML table
    for HyperText, a mapping for Table, and plain text for anything else.
    """
    if object_type == "Image":
        return _png_data_uri(raw) if display.kind == "image" else ""
    if object_type in ("HyperText", "HTML"):
        if display.kind == "table":
            return _html_table(display.table)
        return f"<pre>{html.escape(display.text or display.item_id)}</pre>"
    if object_type == "Table":
        return dict(display.table) if display.kind == "table" else {"text": display.text or ""}
    if display.kind == "text":
        return display.text or ""
    if display.kind == "table":
        return "\n".join(f"{k}: {v}" for k, v in display.table)
    return display.item_id


def result_for(value: Any, schema: LabelSchema) -> list[dict[str, Any]]:
    """A Label Studio result that picks ``value`` (a pre-annotation, or a test's annotation)."""
    if schema.result_type == "number":
        content: dict[str, Any] = {"number": float(value)}
    else:
        content = {"choices": [str(value)]}
    return [{"from_name": schema.control, "to_name": schema.to_name,
             "type": schema.result_type, "value": content}]


def task_payload(
    display: Display,
    raw: Any,
    schema: LabelSchema,
    *,
    round: int,
    pre_annotation: Any = None,
    relabel: bool = False,
) -> dict[str, Any]:
    """The import JSON of one query: data, alloop's ``meta``, and the pre-annotation."""
    note = ""
    if display.proposed is not None:
        note = f"relabel: the current label may be wrong; proposed: {display.proposed}"
    data = {
        schema.data_key: data_value(display, raw, schema.object_type),
        ITEM_KEY: display.item_id,
        SCORE_KEY: "" if display.score is None else float(f"{display.score:.6g}"),
        NOTE_KEY: note,
    }
    payload: dict[str, Any] = {
        "data": data,
        "meta": {META_KEY: {"item_id": display.item_id, "round": int(round),
                            "relabel": bool(relabel), "taken": {}}},
    }
    if pre_annotation is not None:
        payload["predictions"] = [{
            "model_version": f"alloop-round-{int(round)}",
            "result": result_for(pre_annotation, schema),
        }]
    return payload


def bookkeeping(task: Mapping[str, Any]) -> dict[str, Any] | None:
    """alloop's ``meta`` entry of a task (``item_id``, ``round``, ``taken``), or None."""
    meta = task.get("meta") or {}
    entry = meta.get(META_KEY) if isinstance(meta, Mapping) else None
    if not isinstance(entry, Mapping) or "item_id" not in entry:
        return None
    return {"item_id": str(entry["item_id"]), "round": entry.get("round"),
            "relabel": bool(entry.get("relabel")), "taken": dict(entry.get("taken") or {})}


def fingerprint(annotation: Mapping[str, Any]) -> str:
    """A short hash of what an annotation says (its result and whether it was skipped).

    An annotation edited after it was taken gets a new fingerprint and is taken again, as a
    new answer (the store keeps both; the latest counts).
    """
    said = {"result": annotation.get("result") or [],
            "skipped": bool(annotation.get("was_cancelled"))}
    text = json.dumps(said, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def read_annotation(
    annotation: Mapping[str, Any], schema: LabelSchema, parser: AnswerParser
) -> ParsedAnswer:
    """What an annotation answers: a skip (``was_cancelled``), or the label it picked.

    Raises
    ------
    AnswerError
        When it picks nothing the label set knows (or nothing at all).
    """
    if annotation.get("was_cancelled"):
        return ParsedAnswer("skip")
    for region in annotation.get("result") or []:
        if not isinstance(region, Mapping) or region.get("from_name") != schema.control:
            continue
        value = region.get("value") or {}
        if schema.result_type == "number":
            if "number" in value:
                return parser.parse_value(value["number"])
        else:
            picked = value.get("choices") or []
            if len(picked) == 1:
                return parser.parse(str(picked[0]))
            if len(picked) > 1:
                raise AnswerError(f"{len(picked)} choices {picked!r} picked; pick one")
    raise AnswerError(
        f"annotation {annotation.get('id')!r} has no {schema.control_type} answer in "
        f"{schema.control!r}; submit one, or skip the task"
    )
