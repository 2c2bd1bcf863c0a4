"""The Label Studio oracle against a real Label Studio server, started here on 127.0.0.1.

Label Studio lives in its own virtual environment (its pins clash with alloop's). The server
is found through ALLOOP_LABEL_STUDIO, <repo>/.venv-label-studio (scripts/system_deps.sh puts it
there) or /tmp/ls-venv; without one these tests skip, saying so. Its first start migrates a
database into a template folder in the temp dir (about a minute); later starts copy it.
Annotators sign up and submit annotations through Label Studio's REST API, as its web page does.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import threading
from pathlib import Path

import httpx
import numpy as np
import pytest

from alloop import ActiveLoop, Pool
from alloop.loop import LoopSettings
from alloop.models import LogisticGLM
from alloop.store.label_store import LabelStore
from oracles.base import Query
from oracles.label_studio import LabelStudioOracle
from oracles.label_studio.schema import bookkeeping
from oracles.label_studio.server import VENV, find_label_studio, start_label_studio

#: where the development machine's copy is installed (CI uses .venv-label-studio).
ELSEWHERE = ["/tmp/ls-venv/bin/label-studio"]


@pytest.fixture(scope="module")
def server():
    executable = find_label_studio(ELSEWHERE)
    if executable is None:
        pytest.skip(
            f"no Label Studio server installed: run scripts/system_deps.sh (it installs one into "
            f"{VENV}) or set ALLOOP_LABEL_STUDIO to a label-studio executable"
        )
    venv = executable.parent.parent
    if venv.name == VENV and not any(venv.glob(".installed-*")):
        pytest.skip(f"the Label Studio install in {venv} is incomplete (scripts/system_deps.sh "
                    "leaves a .installed-<version> stamp when it succeeds)")
    stamp = f"{executable.resolve()}:{executable.stat().st_mtime_ns}"
    template = Path(tempfile.gettempdir()) / (
        "alloop-label-studio-" + hashlib.sha1(stamp.encode()).hexdigest()[:12])
    with start_label_studio(executable, template=template) as running:
        print(f"Label Studio up at {running.url} in {running.startup_seconds:.1f} s")
        running.people = {
            email: running.add_user(email, "pass-" + email.split("@")[0] + "-12345")
            for email in ("ann@example.com", "bob@example.com")
        }
        yield running


@pytest.fixture
def token_env(server, monkeypatch):
    monkeypatch.setenv("LS_TEST_TOKEN", server.token)
    return "LS_TEST_TOKEN"


class Annotator:
    """A person using Label Studio's REST API with their own token."""

    def __init__(self, server, email):
        self.email = email
        self.web = httpx.Client(base_url=server.url, timeout=60.0,
                                headers={"Authorization": f"Token {server.people[email]}"})

    def label(self, task_id, choice):
        answer = self.web.post(f"/api/tasks/{task_id}/annotations/", json={"result": [
            {"from_name": "label", "to_name": "text", "type": "choices",
             "value": {"choices": [str(choice)]}}]})
        assert answer.status_code == 201, answer.text
        return answer.json()["id"]

    def skip(self, task_id):
        answer = self.web.post(f"/api/tasks/{task_id}/annotations/",
                               json={"result": [], "was_cancelled": True})
        assert answer.status_code == 201, answer.text
        return answer.json()["id"]


def admin(server):
    return httpx.Client(base_url=server.url, timeout=60.0,
                        headers={"Authorization": f"Token {server.token}"})


def project_tasks(server, project_id):
    with admin(server) as web:
        found = web.get("/api/tasks/", params={"project": project_id, "fields": "all",
                                              "page_size": 1000})
        assert found.status_code == 200, found.text
        return {bookkeeping(t)["item_id"]: t for t in sorted(found.json()["tasks"],
                                                             key=lambda t: t["id"])}


def test_push_annotate_pull_into_the_store(server, token_env, caplog):
    caplog.set_level(logging.DEBUG)
    oracle = LabelStudioOracle(server.url, token_env=token_env, title="push-and-pull",
                               classes=["ham", "spam"], poll_interval=0.2, timeout=0)
    batch = [Query(f"m{i}", raw=f"message <b>{i}</b>", score=float(i), prediction="spam",
                   round=1) for i in range(4)]
    assert oracle.request(batch) == []  # pushed; nobody has answered yet
    tasks = project_tasks(server, oracle.project_id)
    assert [t["id"] for t in tasks.values()] == sorted(t["id"] for t in tasks.values())
    assert list(tasks) == ["m3", "m2", "m1", "m0"]  # imported by score: highest first
    assert tasks["m3"]["data"]["text"] == "message <b>3</b>"
    assert tasks["m3"]["predictions"][0]["result"][0]["value"] == {"choices": ["spam"]}

    ann, bob = (Annotator(server, e) for e in server.people)
    ann.label(tasks["m3"]["id"], "spam")
    bob.label(tasks["m2"]["id"], "ham")
    bob.skip(tasks["m1"]["id"])

    store = LabelStore(":memory:")
    web = admin(server)

    def commit(answer):
        store.append(answer, round=1)
        web.delete(f"/api/tasks/{tasks['m0']['id']}/")  # removed while the oracle waits
        return None

    waiting = LabelStudioOracle(server.url, token_env=token_env, title="push-and-pull",
                                classes=["ham", "spam"], poll_interval=0.2, timeout=None)
    got = waiting.request(batch, on_answer=commit)
    web.close()
    # timeout=None, min_share=1: it returned because m0's task was deleted and left the batch
    assert waiting.project_id == oracle.project_id and waiting.deleted == [tasks["m0"]["id"]]
    assert sorted((a.item_id, a.label, a.kind, a.annotator) for a in store.answers()) == [
        ("m1", None, "skip", "bob@example.com"),
        ("m2", "ham", "label", "bob@example.com"),
        ("m3", "spam", "label", "ann@example.com"),
    ]
    assert len(got) == 3 and store.current_labels() == {"m2": "ham", "m3": "spam"}

    # a restarted oracle takes nothing twice: the taken annotation ids are in the tasks' meta
    again = LabelStudioOracle(server.url, token_env=token_env, project_id=oracle.project_id,
                              classes=["ham", "spam"], poll_interval=0, timeout=0)
    assert again.request(batch[1:]) == []
    with admin(server) as web:
        first = web.get(f"/api/tasks/{tasks['m2']['id']}/").json()
    assert len(bookkeeping(first)["taken"]) == 1  # the annotation id, with a fingerprint
    assert server.token not in caplog.text and server.token not in repr(oracle)


def test_loop_rounds_are_labeled_by_annotators_in_label_studio(server, token_env, caplog):
    caplog.set_level(logging.DEBUG)
    rng = np.random.default_rng(0)
    y = np.array([0, 1] * 12)
    X = rng.normal(size=(24, 2)) + 2.0 * y[:, None]
    raw = [f"item {i}: {'high' if t else 'low'} reading" for i, t in enumerate(y)]
    pool = Pool(X, ids=[f"i{i}" for i in range(24)], raw=raw)
    truth = dict(zip(pool.ids.tolist(), y.tolist()))
    oracle = LabelStudioOracle(server.url, token_env=token_env, title="loop-end-to-end",
                               classes=[0, 1], poll_interval=0.2, timeout=120)
    people = [Annotator(server, e) for e in server.people]
    stop = threading.Event()
    done: dict[int, str] = {}  # task id -> what the annotators did
    errors: list[BaseException] = []

    def annotate():
        try:
            while not stop.wait(0.2):
                if oracle.project_id is None:
                    continue
                for item, task in project_tasks(server, oracle.project_id).items():
                    tid = task["id"]
                    if tid in done or task["annotations"]:
                        continue
                    person = people[tid % 2]
                    asked = bookkeeping(task)["round"]
                    if asked == 1 and "deleted" not in done.values():
                        with admin(server) as web:  # an admin removes a task mid-round
                            web.delete(f"/api/tasks/{tid}/")
                        done[tid] = "deleted"
                    elif asked == 2 and "skipped" not in done.values():
                        person.skip(tid)
                        done[tid] = "skipped"
                    else:
                        person.label(tid, truth[item])
                        done[tid] = "labeled"
        except BaseException as exc:  # surfaced by the test below
            errors.append(exc)

    worker = threading.Thread(target=annotate, daemon=True)
    worker.start()
    store = LabelStore(":memory:")
    try:
        result = ActiveLoop(
            pool,
            LogisticGLM(),
            "entropy",
            oracle,
            settings=LoopSettings(initial=4, batch_size=3, rounds=3, progress=False),
            classes=[0, 1],
            store=store,
        ).run()
    finally:
        stop.set()
        worker.join(30)
    assert not errors, errors
    assert result.stop_reason == "max_rounds"

    answers = store.answers()
    assert {a.annotator for a in answers} == set(server.people)
    assert all(a.label == truth[a.item_id] for a in answers if a.kind == "label")
    # each annotation in Label Studio is in the store exactly once
    tasks = project_tasks(server, oracle.project_id).values()
    annotations = [a for t in tasks for a in t["annotations"]]
    assert len(answers) == len(annotations) == sum(v != "deleted" for v in done.values())
    # the item whose task was deleted in round 1 was offered again in round 2 and labeled then
    (deleted,) = [tid for tid, v in done.items() if v == "deleted"]
    round1 = {i for i, _ in store.requests(1)}
    answered1 = {a.item_id for a in store.answers(round=1)}
    (lost,) = round1 - answered1
    assert lost in {i for i, _ in store.requests(2)}
    assert [a.round for a in answers if a.item_id == lost] == [2]
    assert deleted not in {t["id"] for t in tasks}
    (skip,) = [a for a in answers if a.kind == "skip"]
    assert skip.round == 2
    assert result.curve["labels"].tolist() == [4, 6, 8, 11]  # a deletion, a skip: no labels
    assert server.token not in caplog.text


@pytest.mark.parametrize("kind, task", [("table", "classification"), ("image", "classification"),
                                        ("table", "regression")])
def test_label_studio_accepts_each_interface_and_its_tasks(server, token_env, kind, task):
    item = {"table": {"x": np.array([0.5, -1.0])}, "image": {"raw": np.eye(8)}}[kind]
    classes = None if task == "regression" else [0, 1]
    oracle = LabelStudioOracle(server.url, token_env=token_env, title=f"{kind}-{task}",
                               task=task, classes=classes, feature_names=["a<b", "c"],
                               poll_interval=0.2, timeout=0)
    query = Query("q", score=0.5, prediction=1, round=0, **item)
    assert oracle.request([query]) == []
    (task_json,) = project_tasks(server, oracle.project_id).values()
    shown = task_json["data"][oracle.schema.data_key]
    if kind == "image":
        assert oracle.schema.object_type == "Image" and shown.startswith("data:image/png;base64,")
    else:
        assert oracle.schema.object_type == "HyperText" and "a&lt;b" in shown
    with admin(server) as web:
        person = web.post(f"/api/tasks/{task_json['id']}/annotations/", json={
            "result": [{"from_name": "label", "to_name": oracle.schema.to_name,
                        "type": oracle.schema.result_type,
                        "value": {"number": 2.5} if task == "regression" else {"choices": ["1"]}}]})
        assert person.status_code == 201, person.text
    oracle.timeout = 60
    (answer,) = oracle.request([query])
    assert answer.label == (2.5 if task == "regression" else 1)
    assert answer.annotator == server.email


def test_an_account_whose_password_begins_with_a_dash_is_created(tmp_path):
    """A generated password may begin with "-" (1 in 64 for token_urlsafe); Label Studio's
    command line must still take it as the password, not as an option (it exited 2)."""
    import subprocess

    from oracles.label_studio.server import _account, _environment

    executable = find_label_studio(ELSEWHERE)
    if executable is None:
        pytest.skip(f"no Label Studio server installed: run scripts/system_deps.sh ({VENV})")
    data = tmp_path / "data"
    data.mkdir()
    done = subprocess.run(
        [str(executable), "init", "--quiet", "--data-dir", str(data),
         *_account("dash@example.com", "-nyVpjRTUqxTAZYi", "b" * 40)],
        env=_environment(executable, data), capture_output=True, text=True,
        stdin=subprocess.DEVNULL, timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
