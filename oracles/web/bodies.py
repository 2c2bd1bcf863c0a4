"""The request bodies of the annotation page's routes, as OpenAPI describes them.

Documentation only (the API fuzz tests read them): the routes read their bodies themselves, to
answer people with messages of their own.
"""

from __future__ import annotations

from typing import Any


def _body(kind: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    """An OpenAPI request body (the routes read bodies themselves, to give people's messages)."""
    return {"requestBody": {"required": True, "content": {kind: {"schema": {
        "type": "object", "properties": properties, "required": required}}}}}


_FORM = "application/x-www-form-urlencoded"
_TEXT = {"type": "string"}
_ANY = {"anyOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}, {"type": "null"}]}
ANSWER_JSON = _body("application/json", {"item_id": _TEXT, "label": _ANY, "batch": _TEXT},
                    ["item_id", "label"])
UNDO_JSON = _body("application/json", {"batch": _TEXT}, [])
LOGIN_FORM = _body(_FORM, {"token": _TEXT}, ["token"])
ANSWER_FORM = _body(_FORM, {"csrf": _TEXT, "batch": _TEXT, "item_id": _TEXT, "answer": _TEXT},
                    ["item_id", "answer"])
CSRF_FORM = _body(_FORM, {"csrf": _TEXT, "batch": _TEXT}, [])
