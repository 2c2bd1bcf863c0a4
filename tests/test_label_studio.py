"""The Label Studio oracle's own logic, against an in-memory stand-in for the server.

The real server is exercised in tests/test_label_studio_server.py; here a fake keeps tasks and
annotations as Label Studio's JSON, so that parsing, idempotency, deletions and skips can be
checked quickly and exactly.
"""

from __future__ import annotations

import base64
import io
import itertools
import logging
import xml.etree.ElementTree as ET

import httpx
import numpy as np
import pytest

from oracles.answers import AnswerError, AnswerParser
from oracles.base import Answer, Query
from oracles.display import QueryDisplay
from oracles.label_studio import LabelStudioOracle, label_config, read_annotation, read_schema
from oracles.label_studio.schema import bookkeeping, fingerprint, result_for, task_payload


def parse_config(xml: str) -> dict:
    """What Label Studio's ``parsed_label_config`` holds for a config (control tags only)."""
    root = ET.fromstring(xml)
    objects = {e.get("name"): e for e in root.iter() if e.get("value", "").startswith("$")
               and e.get("name")}
    parsed = {}
    for tag in root.iter():
        if tag.tag in ("Choices", "Number"):
            target = objects[tag.get("toName")]
            parsed[tag.get("name")] = {
                "type": tag.tag, "to_name": [tag.get("toName")],
                "inputs": [{"type": target.tag, "value": target.get("value")[1:]}],
                "labels": [c.get("value") for c in tag.iter("Choice")],
            }
    return parsed


class FakeLabelStudio:
    """Projects, tasks and annotations in memory, as label-studio-sdk returns them."""

    def __init__(self):
        self.projects: dict[int, dict] = {}
        self.rows: dict[int, dict] = {}
        self.users = {7: "ann@example.com", 8: "bob@example.com"}
        self.ids = itertools.count(1)
        self.calls: list[str] = []
        self.fail_next_poll = False

    # the LabelStudioAPI protocol
    def project(self, project_id):
        return self.projects[project_id]

    def find_projects(self, title):
        return [p for p in self.projects.values() if title in p["title"]]

    def create_project(self, title, description, label_config):
        pid = next(self.ids)
        self.projects[pid] = {"id": pid, "title": title, "description": description,
                              "label_config": label_config,
                              "parsed_label_config": parse_config(label_config)}
        return pid

    def tasks_of(self, project_id):
        return [t for t in self.rows.values() if t["project"] == project_id]

    def tasks(self, project_id, ids=None):
        self.calls.append("tasks")
        if ids is not None and self.fail_next_poll:
            self.fail_next_poll = False
            raise OSError("connection refused")
        found = [t for t in self.tasks_of(project_id) if ids is None or t["id"] in set(ids)]
        return [dict(t, annotations=[dict(a) for a in t["annotations"]]) for t in found]

    def import_tasks(self, project_id, tasks):
        out = []
        for payload in tasks:
            tid = next(self.ids)
            self.rows[tid] = {"id": tid, "project": project_id, "annotations": [],
                               "data": payload["data"], "meta": payload.get("meta", {}),
                               "predictions": payload.get("predictions", [])}
            out.append(tid)
        return out

    def update_task(self, task_id, **fields):
        self.calls.append(f"update {task_id}")
        self.rows[task_id].update(fields)

    def user_name(self, user_id):
        return self.users.get(user_id)

    # what annotators do
    def annotate(self, task_id, choice=None, user=7, skip=False, number=None):
        aid = next(self.ids)
        task = self.rows[task_id]
        schema = read_schema(self.projects[task["project"]]["parsed_label_config"],
                             "regression" if number is not None else "classification")
        result = [] if skip else result_for(number if number is not None else choice, schema)
        task["annotations"].append({"id": aid, "completed_by": user, "was_cancelled": skip,
                                    "result": result})
        return aid

    def task_of(self, item_id):
        return max(t["id"] for t in self.rows.values() if bookkeeping(t)["item_id"] == item_id)


def oracle_for(fake, **kw):
    defaults = dict(classes=["ham", "spam"], poll_interval=0, timeout=0, title="test", api=fake)
    return LabelStudioOracle("http://ls.invalid", **{**defaults, **kw})


def queries(n, round_=1, **kw):
    return [Query(f"m{i}", raw=f"message {i}", score=float(i), prediction="spam", round=round_,
                  **kw) for i in range(n)]


# ------------------------------------------------------------------ the labeling interface
def test_label_config_escapes_class_names_and_parses_back():
    classes = ['a"b', "<c>", "d & e"]
    xml = label_config("table", classes=classes)
    parsed = parse_config(xml)
    assert parsed["label"]["labels"] == classes
    schema = read_schema(parsed)
    assert (schema.control, schema.to_name, schema.object_type, schema.data_key) == (
        "label", "features", "HyperText", "features")


def test_label_config_for_regression_uses_a_number_and_needs_classes_otherwise():
    schema = read_schema(parse_config(label_config("image", task="regression")), "regression")
    assert (schema.control_type, schema.object_type, schema.data_key) == ("Number", "Image", "image")
    with pytest.raises(ValueError, match="label set"):
        label_config("text")


def test_read_schema_prefers_the_control_named_label_and_explains_a_missing_one():
    parsed = {
        "mood": {"type": "Choices", "to_name": ["t"], "inputs": [{"type": "Text", "value": "t"}],
                 "labels": ["x"]},
        "label": {"type": "Choices", "to_name": ["t"], "inputs": [{"type": "Text", "value": "t"}],
                  "labels": ["y"]},
    }
    assert read_schema(parsed).choices == ("y",)
    with pytest.raises(ValueError, match=r"no Number tag \(it has \['Choices'\]\)"):
        read_schema(parsed, "regression")


# ------------------------------------------------------------------ tasks
def test_task_payload_escapes_a_feature_table_and_keeps_bookkeeping():
    schema = read_schema(parse_config(label_config("table", classes=[0, 1])))
    display = QueryDisplay(None, ["<script>", "b&b"])(Query("r1", x=np.array([1.5, 2.0]), score=0.25))
    payload = task_payload(display, None, schema, round=3, pre_annotation=1)
    html = payload["data"]["features"]
    assert "<script>" not in html and "&lt;script&gt;" in html and "b&amp;b" in html
    assert payload["data"]["alloop_score"] == 0.25
    assert bookkeeping(payload) == {"item_id": "r1", "round": 3, "relabel": False, "taken": {}}
    assert payload["predictions"][0]["result"][0]["value"] == {"choices": ["1"]}


def test_an_image_item_is_embedded_as_a_png_of_its_pixels():
    from matplotlib.image import imread

    pixels = np.arange(64, dtype=float).reshape(8, 8)
    schema = read_schema(parse_config(label_config("image", classes=[0, 1])))
    display = QueryDisplay()(Query("d", raw=pixels))
    uri = task_payload(display, pixels, schema, round=0)["data"]["image"]
    assert uri.startswith("data:image/png;base64,")
    png = imread(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])), format="png")
    grey = png[..., :3].mean(axis=2)
    scale = png.shape[0] // 8
    small = grey[::scale, ::scale]  # whole-pixel upscaling: every scale-th pixel is the original
    # drawn dark-on-light: brighter pixels in the PNG are smaller values
    assert np.array_equal(np.argsort(-small.ravel(), kind="stable"), np.arange(64))


def test_read_annotation_maps_choices_skips_and_numbers():
    schema = read_schema(parse_config(label_config("text", classes=[0, 1, 2])))
    parser = AnswerParser([0, 1, 2])
    pick = {"id": 1, "result": result_for(2, schema)}
    assert read_annotation(pick, schema, parser).label == 2
    assert read_annotation({"id": 2, "was_cancelled": True, "result": []}, schema, parser).kind == "skip"
    with pytest.raises(AnswerError, match="no Choices answer"):
        read_annotation({"id": 3, "result": []}, schema, parser)
    with pytest.raises(AnswerError, match="not a valid answer"):
        read_annotation({"id": 4, "result": result_for(7, schema)}, schema, parser)
    two = result_for(1, schema)
    two[0]["value"]["choices"] = ["0", "1"]
    with pytest.raises(AnswerError, match="pick one"):
        read_annotation({"id": 5, "result": two}, schema, parser)
    numbers = read_schema(parse_config(label_config("text", task="regression")), "regression")
    value = read_annotation({"id": 6, "result": result_for(3.25, numbers)}, numbers,
                            AnswerParser(task="regression"))
    assert value.label == 3.25


def test_fingerprint_changes_with_the_answer_only():
    schema = read_schema(parse_config(label_config("text", classes=["a", "b"])))
    a = {"id": 1, "result": result_for("a", schema), "updated_at": "x"}
    assert fingerprint(a) == fingerprint({**a, "updated_at": "y", "lead_time": 3.0})
    assert fingerprint(a) != fingerprint({**a, "result": result_for("b", schema)})
    assert fingerprint(a) != fingerprint({**a, "was_cancelled": True})


# ------------------------------------------------------------------ the oracle
def test_push_creates_the_project_and_orders_tasks_by_score():
    fake = FakeLabelStudio()
    oracle = oracle_for(fake)
    assert oracle.request(queries(3)) == []
    assert oracle.timed_out
    (project,) = fake.projects.values()
    assert 'Choice value="spam"' in project["label_config"] and project["title"] == "test"
    items = [bookkeeping(t)["item_id"] for t in sorted(fake.tasks_of(project["id"]),
                                                       key=lambda t: t["id"])]
    assert items == ["m2", "m1", "m0"]  # highest score first
    assert fake.tasks_of(project["id"])[0]["predictions"][0]["result"][0]["value"] == {
        "choices": ["spam"]}


def test_annotations_become_answers_with_the_annotators_and_skips():
    fake = FakeLabelStudio()
    oracle = oracle_for(fake)
    oracle.request(queries(3))
    fake.annotate(fake.task_of("m0"), "ham", user=7)
    fake.annotate(fake.task_of("m1"), "spam", user=8)
    fake.annotate(fake.task_of("m2"), skip=True, user=8)
    got = {(a.item_id, a.label, a.annotator, a.kind) for a in oracle.request(queries(3))}
    assert got == {("m0", "ham", "ann@example.com", "label"),
                   ("m1", "spam", "bob@example.com", "label"),
                   ("m2", None, "bob@example.com", "skip")}
    assert len(fake.rows) == 3  # the open tasks were reused, not duplicated


def test_an_annotation_is_handed_on_once_even_by_a_new_oracle():
    fake = FakeLabelStudio()
    first = oracle_for(fake)
    first.request(queries(2))
    fake.annotate(fake.task_of("m0"), "ham")
    assert [a.item_id for a in first.request(queries(2))] == ["m0"]
    assert [a.item_id for a in first.request(queries(2))] == []  # same oracle, next poll
    restarted = oracle_for(fake)  # finds the project by title; reads what was taken from meta
    fake.annotate(fake.task_of("m1"), "spam")
    got = restarted.request(queries(2))
    assert [(a.item_id, a.label) for a in got] == [("m1", "spam")]
    assert restarted.project_id == first.project_id


def test_an_edited_annotation_is_a_new_answer():
    fake = FakeLabelStudio()
    oracle = oracle_for(fake)
    oracle.request(queries(1))
    tid = fake.task_of("m0")
    fake.annotate(tid, "ham")
    assert [a.label for a in oracle.request(queries(1))] == ["ham"]
    # the item is re-asked (say, no label was stored): the same task, edited meanwhile
    fake.rows[tid]["meta"]["alloop"]["taken"] = {}
    fake.rows[tid]["annotations"][0]["result"][0]["value"]["choices"] = ["spam"]
    assert [a.label for a in oracle_for(fake).request(queries(1))] == ["spam"]


def test_a_task_deleted_during_the_wait_is_not_waited_for_and_its_item_stays_open():
    fake = FakeLabelStudio()
    oracle_for(fake).request(queries(3))
    fake.annotate(fake.task_of("m0"), "ham")
    fake.annotate(fake.task_of("m1"), "spam")
    doomed = fake.task_of("m2")

    def sink(answer):
        fake.rows.pop(doomed, None)  # deleted in Label Studio while the oracle waits
        return None

    oracle = oracle_for(fake, timeout=None, min_share=1.0)
    got = oracle.request(queries(3), on_answer=sink)
    # timeout=None: the request returns only because m2 left the batch
    assert sorted(a.item_id for a in got) == ["m0", "m1"] and not oracle.timed_out
    assert oracle.deleted == [doomed]
    oracle_for(fake).request(queries(3)[2:])  # asked again (the loop re-offers it): a new task
    assert fake.task_of("m2") > doomed


def test_a_refused_answer_is_reported_and_not_marked_taken():
    fake = FakeLabelStudio()
    oracle = oracle_for(fake)
    oracle.request(queries(1))
    tid = fake.task_of("m0")
    fake.annotate(tid, "ham")
    assert oracle.request(queries(1), on_answer=lambda a: "the store is full") == []
    assert any("the store is full" in p for p in oracle.problems)
    assert bookkeeping(fake.rows[tid])["taken"] == {}
    committed = []
    got = oracle_for(fake).request(queries(1), on_answer=lambda a: committed.append(a))
    assert [a.label for a in got] == [a.label for a in committed] == ["ham"]


def test_min_share_returns_once_enough_items_are_answered():
    fake = FakeLabelStudio()
    oracle_for(fake).request(queries(4))
    fake.annotate(fake.task_of("m3"), "ham")
    fake.annotate(fake.task_of("m2"), "ham")
    oracle = oracle_for(fake, timeout=None, min_share=0.5)
    assert len(oracle.request(queries(4))) == 2 and not oracle.timed_out


def test_a_failed_poll_is_retried():
    fake = FakeLabelStudio()
    oracle_for(fake).request(queries(1))
    fake.annotate(fake.task_of("m0"), "spam")
    fake.fail_next_poll = True
    oracle = oracle_for(fake, timeout=None)
    # the first poll after the push fails (fail_next_poll covers the open-task read): the
    # oracle keeps going until the answer is there
    assert [a.label for a in oracle.request(queries(1))] == ["spam"]


def test_a_relabel_query_gets_its_own_task_with_the_proposed_label():
    fake = FakeLabelStudio()
    oracle = oracle_for(fake)
    oracle.request(queries(1))
    fake.annotate(fake.task_of("m0"), "ham")
    oracle.request(queries(1))
    relabel = [Query("m0", raw="message 0", score=1.0, prediction="ham", round=2,
                     proposed_label="spam")]
    assert oracle.request(relabel) == []  # the old annotation is not taken again
    task = fake.rows[fake.task_of("m0")]
    assert bookkeeping(task)["relabel"] is True
    assert task["predictions"][0]["result"][0]["value"] == {"choices": ["spam"]}
    assert "proposed: spam" in task["data"]["alloop_note"]


def test_an_existing_project_with_other_choices_is_reported():
    fake = FakeLabelStudio()
    pid = fake.create_project("theirs", "", label_config("text", classes=["ham", "eggs"]))
    oracle = oracle_for(fake, project_id=pid)
    oracle.request(queries(1))
    fake.annotate(fake.task_of("m0"), "eggs")
    assert oracle.request(queries(1)) == []
    text = " ".join(oracle.problems)
    assert "'eggs'" in text and "no choice for class(es) ['spam']" in text


def test_regression_answers_are_numbers():
    fake = FakeLabelStudio()
    oracle = oracle_for(fake, task="regression", classes=None)
    qs = [Query("r", x=np.array([1.0, 2.0]), score=None, prediction=0.5, round=0)]
    oracle.request(qs)
    fake.annotate(fake.task_of("r"), number=4.5)
    (answer,) = oracle.request(qs)
    assert answer.label == 4.5 and isinstance(answer.label, float)


# ------------------------------------------------------------------ the token
def test_the_token_comes_from_the_environment_and_is_never_shown(monkeypatch, caplog):
    secret = "tok-" + "9" * 30
    monkeypatch.setenv("MY_LS_TOKEN", secret)
    oracle = LabelStudioOracle("http://127.0.0.1:9", token_env="MY_LS_TOKEN", classes=[0, 1],
                               timeout=0, poll_interval=0)
    assert secret not in repr(oracle) and secret not in repr(oracle.api)
    assert secret not in str(vars(oracle))
    caplog.set_level(logging.DEBUG)
    with pytest.raises(httpx.ConnectError):  # nothing listens on port 9
        oracle.request(queries(1, round_=0))
    assert secret not in caplog.text
    monkeypatch.delenv("MY_LS_TOKEN")
    with pytest.raises(ValueError, match="set the environment variable MY_LS_TOKEN"):
        LabelStudioOracle("http://127.0.0.1:9", token_env="MY_LS_TOKEN", classes=[0, 1])


def test_answers_carry_the_label_studio_ids():
    fake = FakeLabelStudio()
    oracle = oracle_for(fake)
    oracle.request(queries(1))
    tid = fake.task_of("m0")
    aid = fake.annotate(tid, "spam")
    (answer,) = oracle.request(queries(1))
    assert isinstance(answer, Answer)
    assert answer.extra == {"label_studio_task": tid, "label_studio_annotation": aid}


# ------------------------------------------------------------------ the documented config
def test_the_documented_config_builds_a_label_studio_oracle(monkeypatch):
    import re
    from pathlib import Path

    import yaml

    from alloop.config import parse_config
    from alloop.experiment import build_oracle, prepare_data

    text = (Path(__file__).resolve().parents[1] / "docs" / "label-studio.md").read_text()
    (block,) = [b for b in re.findall(r"```yaml\n(.*?)```", text, re.S) if "label-studio" in b]
    config = parse_config(yaml.safe_load(block))
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "secret-for-the-doc-test")
    oracle = build_oracle(config, prepare_data(config), config.seed)
    assert isinstance(oracle, LabelStudioOracle)
    assert (oracle.url, oracle.title, oracle.project_id, oracle.timeout) == (
        "http://127.0.0.1:8080", "digits-in-label-studio", None, 3600)
    assert oracle.classes == list(range(10))
    assert "secret-for-the-doc-test" not in repr(oracle) + str(config.model_dump())
