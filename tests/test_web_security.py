"""The annotation page refuses what it must: no token, a wrong or revoked token, another
annotator's item, a forged label, a cross-site form; HTML in item text stays text."""

import re

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from alloop.aggregation import latest_label
from alloop.store import LabelStore
from oracles.answers import AnswerParser
from oracles.base import Query
from oracles.display import QueryDisplay
from oracles.web import TokenStore, WebOracle
from oracles.web.app import COOKIE, create_app, csrf_token
from oracles.web.board import Board

PAYLOAD = '<script>window.pwned=1</script><img src=x onerror="window.pwned=2"> & "quotes"'


class Team:
    """A board with a batch open, its app, tokens for ann and bob, and a real label store that
    commits answers the way the loop's on_answer does."""

    def __init__(self, tmp_path, refuse=None):
        self.tokens = TokenStore(tmp_path / "tokens.sqlite")
        self.secret = {a: self.tokens.create(a) for a in ("ann", "bob", "eve")}
        self.store = LabelStore(tmp_path / "labels.sqlite")
        self.board = Board(["ann", "bob"], AnswerParser(["ham", "spam"]),
                           QueryDisplay(tmp_path / "images", show_score=False))
        self.refuse = refuse or (lambda answer: None)
        queries = [Query("m1", raw=PAYLOAD, prediction="spam", round=1),
                   Query("m2", raw="see you at lunch", round=1),
                   Query("m3", raw=np.eye(4).ravel().tolist() * 4, round=1)]
        self.batch = self.board.open(
            queries, {"m1": ("ann",), "m2": ("bob",), "m3": ("bob",)}, self.commit)
        self.client = TestClient(create_app(self.board, self.tokens), base_url="http://testserver")

    def commit(self, answer):
        problem = self.refuse(answer)
        if problem is None:
            self.store.append(answer, round=1)
        return problem

    def bearer(self, who):
        return {"Authorization": f"Bearer {self.secret[who]}"}

    def login(self, who):
        client = TestClient(self.client.app, base_url="http://testserver")
        response = client.post("/login", data={"token": self.secret[who]}, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"] == "/"
        return client

    def rows(self):
        return [(a.item_id, a.annotator, a.kind, a.label) for a in self.store.answers()]


@pytest.fixture
def team(tmp_path):
    t = Team(tmp_path)
    yield t
    t.store.close()


def test_no_token_or_a_wrong_one_gets_401(team):
    c = team.client
    for method, path in [("get", "/"), ("get", "/api/next"), ("get", "/api/status"),
                         ("post", "/api/answer"), ("post", "/answer"), ("post", "/undo"),
                         ("get", f"/image/{team.batch.id}/m3")]:
        assert getattr(c, method)(path).status_code == 401, path
    wrong = {"Authorization": "Bearer " + team.secret["ann"][::-1]}
    assert c.get("/api/next", headers=wrong).status_code == 401
    assert c.post("/api/answer", json={"item_id": "m1", "label": "ham"}, headers=wrong).status_code == 401
    assert c.get("/api/next", headers={"Authorization": f"Basic {team.secret['ann']}"}).status_code == 401
    c.cookies.set(COOKIE, "forged-session")
    page = c.get("/")
    # the cookie names a server-side session (issue 14): an unknown one has ended
    assert page.status_code == 401 and "session has ended" in page.text and 'name="token"' in page.text
    assert c.post("/login", data={"token": "nope"}).status_code == 401
    assert team.rows() == []


def test_a_revoked_token_stops_working_at_once_and_a_stranger_is_refused(team):
    browser = team.login("ann")
    assert browser.get("/").status_code == 200
    TokenStore(team.tokens.path).revoke("ann")
    assert browser.get("/").status_code == 401
    assert team.client.get("/api/next", headers=team.bearer("ann")).status_code == 401
    # eve has a valid token in the file but is not an annotator of this run
    refused = team.client.get("/api/next", headers=team.bearer("eve"))
    assert refused.status_code == 403 and "not an annotator of this run" in refused.json()["detail"]


def test_an_annotator_cannot_answer_or_see_another_annotators_item(team):
    c = team.client
    r = c.post("/api/answer", json={"item_id": "m2", "label": "ham"}, headers=team.bearer("ann"))
    assert r.status_code == 403 and r.json()["detail"] == \
        "item 'm2' is not assigned to you (ann) in this batch"
    r = c.post("/api/answer", json={"item_id": "no-such-item", "label": "ham"}, headers=team.bearer("ann"))
    assert r.status_code == 403
    assert c.get(f"/image/{team.batch.id}/m3", headers=team.bearer("ann")).status_code == 403
    image = c.get(f"/image/{team.batch.id}/m3", headers=team.bearer("bob"))
    assert image.status_code == 200 and image.content[:8] == b"\x89PNG\r\n\x1a\n"
    browser = team.login("ann")
    csrf = csrf_token(browser.cookies.get(COOKIE))
    page = browser.post("/answer", data={"csrf": csrf, "batch": team.batch.id, "item_id": "m3",
                                         "answer": "ham"})
    assert page.status_code == 403 and "not assigned to you" in page.text
    assert team.rows() == []


@pytest.mark.parametrize("label", ["eggs", "1", "0", "HAM ", True, 1, None, "<b>ham</b>", ""])
def test_a_forged_label_is_refused_with_the_valid_ones_named(team, label):
    r = team.client.post("/api/answer", json={"item_id": "m1", "label": label},
                         headers=team.bearer("ann"))
    if label == "HAM ":  # a label's own name, case and spaces aside, is that label
        assert r.status_code == 200 and team.rows() == [("m1", "ann", "label", "ham")]
        return
    assert r.status_code == 422, r.text
    assert "is not one of the labels ('ham', 'spam'), skip or unsure" in r.json()["detail"]
    assert team.rows() == []


def test_answers_once_then_409_and_undo_asks_again(team):
    c, ann = team.client, team.bearer("ann")
    assert c.post("/api/answer", json={"item_id": "m1", "label": "spam"}, headers=ann).status_code == 200
    again = c.post("/api/answer", json={"item_id": "m1", "label": "ham"}, headers=ann)
    assert again.status_code == 409 and "already answered" in again.json()["detail"]
    assert c.post("/api/undo", json={}, headers=ann).json() == {"reopened": "m1"}
    assert c.post("/api/undo", json={}, headers=ann).status_code == 409  # nothing left to undo
    assert c.post("/api/answer", json={"item_id": "m1", "label": "ham"}, headers=ann).status_code == 200
    # append-only: both answers are kept; the newer one is ann's vote
    assert team.rows() == [("m1", "ann", "label", "spam"), ("m1", "ann", "label", "ham")]
    assert latest_label(team.store.answers()) == {"m1": "ham"}
    skip = c.post("/api/answer", json={"item_id": "m2", "label": "skip"}, headers=team.bearer("bob"))
    assert skip.status_code == 200 and skip.json()["kind"] == "skip"


def test_the_loops_refusal_is_shown_and_the_item_stays_open(tmp_path):
    t = Team(tmp_path, refuse=lambda a: "the label store is read-only right now")
    r = t.client.post("/api/answer", json={"item_id": "m1", "label": "ham"}, headers=t.bearer("ann"))
    assert r.status_code == 422 and "read-only right now" in r.json()["detail"]
    t.refuse = lambda a: None
    assert t.client.post("/api/answer", json={"item_id": "m1", "label": "ham"},
                         headers=t.bearer("ann")).status_code == 200
    t.store.close()


def test_a_closed_batch_takes_no_answers(team):
    team.board.close(team.batch)
    r = team.client.post("/api/answer", json={"item_id": "m1", "label": "ham"},
                         headers=team.bearer("ann"))
    assert r.status_code == 409 and "no batch is open" in r.json()["detail"]
    status = team.client.get("/api/status", headers=team.bearer("ann")).json()
    assert status["state"] == "idle" and status["pending"] == 0


def test_forms_need_the_csrf_token_and_this_origin(team):
    browser = team.login("ann")
    cookie = browser.cookies.get(COOKIE)
    assert cookie and cookie != team.secret["ann"]  # a session id, not the token (issue 14)
    good = {"csrf": csrf_token(cookie), "batch": team.batch.id, "item_id": "m1",
            "answer": "spam"}
    for form, headers in [({**good, "csrf": ""}, {}), ({**good, "csrf": "0" * 64}, {}),
                          ({k: v for k, v in good.items() if k != "csrf"}, {}),
                          (good, {"Origin": "http://evil.example"})]:
        r = browser.post("/answer", data=form, headers=headers, follow_redirects=False)
        assert r.status_code == 403 and ("security token" in r.text or "may not post" in r.text)
    # a JSON post with the cookie needs the token as a header
    assert browser.post("/api/answer", json={"item_id": "m1", "label": "spam"}).status_code == 403
    assert team.rows() == []
    r = browser.post("/answer", data=good, headers={"Origin": "http://testserver"},
                     follow_redirects=False)
    assert r.status_code == 303 and team.rows() == [("m1", "ann", "label", "spam")]


def test_the_session_cookie_is_httponly_and_strict_and_the_token_leaves_the_address(team):
    r = team.client.post("/login", data={"token": team.secret["ann"]}, follow_redirects=False)
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
    assert team.secret["ann"].lower() not in cookie
    assert r.headers["location"] == "/"
    # a GET with ?token= no longer signs in (login CSRF, issue 14): it shows the form
    got = team.client.get(f"/login?token={team.secret['bob']}", follow_redirects=False)
    assert got.status_code == 200 and "set-cookie" not in got.headers


def test_html_in_item_text_is_rendered_as_text(team):
    browser = team.login("ann")
    page = browser.get("/")
    assert page.status_code == 200
    body = page.text
    assert "&lt;script&gt;window.pwned=1&lt;/script&gt;" in body
    assert "&lt;img src=x onerror=&quot;window.pwned=2&quot;&gt; &amp; &quot;quotes&quot;" in body
    assert "<img src=x" not in body and "window.pwned=1</script>" not in body
    assert re.findall(r"<script[^>]*>", body) == ['<script src="/static/annotate.js" defer>']
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    # a forged answer is echoed back in the error message: escaped too
    r = browser.post("/answer", data={"csrf": csrf_token(browser.cookies.get(COOKIE)), "batch": team.batch.id,
                                      "item_id": "m1", "answer": "<img src=x onerror=alert(1)>"})
    assert r.status_code == 422 and "&lt;img src=x onerror=alert(1)&gt;" in r.text
    assert "<img src=x" not in r.text
    api = team.client.get("/api/next", headers=team.bearer("ann")).json()
    assert api["item"]["text"] == PAYLOAD and api["labels"] == ["ham", "spam"]  # data, as data


def test_the_server_binds_to_localhost_by_default(tmp_path):
    oracle = WebOracle(["ann"], tokens=tmp_path / "tokens.sqlite", port=0, classes=[0, 1],
                       announce=False)
    try:
        url = oracle.start()
        assert oracle.host == "127.0.0.1" and url.startswith("http://127.0.0.1:")
        assert httpx.get(url + "healthz").json() == {"status": "ok"}
        assert httpx.get(url + "api/next").status_code == 401
        with pytest.raises(OSError, match="cannot listen on 127.0.0.1"):
            WebOracle(["ann"], tokens=tmp_path / "tokens.sqlite", port=int(url.rsplit(":", 1)[1][:-1]),
                      classes=[0, 1], announce=False).start()
    finally:
        oracle.close()
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "healthz", timeout=2)


# ------------------------------------------------------------------ sessions, limits (issue 14)


def test_signing_out_revokes_the_session_on_the_server(team):
    browser = team.login("ann")
    sid = browser.cookies.get(COOKIE)
    page = browser.get("/")
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text).group(1)
    assert browser.post("/logout", data={"csrf": csrf}, follow_redirects=False).status_code == 303
    replay = TestClient(team.client.app, base_url="http://testserver")
    replay.cookies.set(COOKIE, sid)  # a copy of the cookie kept from before signing out
    assert replay.get("/").status_code == 401
    r = replay.post("/answer", data={"csrf": csrf, "batch": team.batch.id, "item_id": "m1",
                                     "answer": "spam"})
    assert r.status_code == 401 and team.rows() == []


def test_a_session_ends_with_its_token(team):
    browser = team.login("ann")
    assert browser.get("/").status_code == 200
    team.tokens.create("ann")  # a new token replaces the old one
    assert browser.get("/").status_code == 401
    assert browser.get("/api/next").status_code == 401


@pytest.mark.parametrize("auth", [False, True])
def test_a_large_body_is_refused_before_authentication_and_while_read(team, auth):
    headers = team.bearer("ann") if auth else {}
    big = b"x" * (2 * 1024 * 1024)
    r = team.client.post("/api/answer", content=big,
                         headers={**headers, "Content-Type": "application/json"})
    assert r.status_code == 413
    # no Content-Length (chunked): refused once the bytes read pass the limit

    def chunks():
        for _ in range(64):
            yield b"y" * 16384

    r = team.client.post("/api/answer", content=chunks(),
                         headers={**headers, "Content-Type": "application/json"})
    assert r.status_code == (413 if auth else 401)  # without a token it is never read at all
    r = team.client.post("/login", content=chunks(),
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 413
    assert team.rows() == []


def test_bad_tokens_spend_a_per_client_budget_then_429_with_retry_after(tmp_path):
    from oracles.web.guards import FailureBudget

    t = Team(tmp_path)
    t.client = TestClient(create_app(t.board, t.tokens, failure_budget=FailureBudget(5, 60)),
                          base_url="http://testserver")
    for _ in range(5):
        assert t.client.get("/api/next", headers={"Authorization": "Bearer guess"}).status_code == 401
    r = t.client.get("/api/next", headers={"Authorization": "Bearer guess"})
    assert r.status_code == 429 and 0 < int(r.headers["retry-after"]) <= 60
    # while the budget is spent not even a good token is checked, through any route
    assert t.client.get("/api/next", headers=t.bearer("ann")).status_code == 429
    login = t.client.post("/login", data={"token": t.secret["ann"]}, follow_redirects=False)
    assert login.status_code == 429 and "retry-after" in login.headers
    assert t.client.post("/api/answer", json={"item_id": "m1", "label": "ham"},
                         headers=t.bearer("ann")).status_code == 429
    assert t.rows() == []
    t.store.close()


def test_login_is_a_post_and_refused_from_another_site(team):
    page = team.client.get(f"/login?token={team.secret['ann']}", follow_redirects=False)
    assert page.status_code == 200 and "set-cookie" not in page.headers
    assert 'method="post" action="/login"' in page.text
    for headers in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        r = team.client.post("/login", data={"token": team.secret["ann"]}, headers=headers,
                             follow_redirects=False)
        assert r.status_code == 403 and "set-cookie" not in r.headers
    ok = team.client.post("/login", data={"token": team.secret["ann"]},
                          headers={"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"},
                          follow_redirects=False)
    assert ok.status_code == 303 and COOKIE in ok.headers["set-cookie"]
