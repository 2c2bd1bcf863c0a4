"""The FastAPI app of the annotation page, over a shared :class:`~oracles.web.board.Board`.

Who is asking
    Every route but ``/login``, ``/healthz`` and ``/static`` needs an annotator token: in an
    ``Authorization: Bearer <token>`` header (scripts, API clients), or through the session
    that ``POST /login`` opens for browsers: the cookie (``HttpOnly``, ``SameSite=Strict``;
    ``Secure`` behind HTTPS) holds a random session id, kept on the server with the token
    (:mod:`oracles.web.guards`). The token is checked against the token file on every request,
    so a revoked token stops working at once, sessions included; signing out ends the session.
    No valid token: 401. A client that sends too many bad tokens gets 429 with ``Retry-After``.
    A body over :data:`MAX_BODY` is refused with 413 while it is read, before anything else.

Forged requests
    A form posted with the session cookie must carry the page's CSRF token (an HMAC of the
    session id, so another site cannot know it) and, when the browser sends one, an ``Origin``
    of this server; JSON posts with the cookie send it as ``X-CSRF-Token``. Bearer requests
    need neither: browsers never add that header on their own. Signing in is a POST with the
    token in the body, refused from another origin (no login CSRF); ``GET /login`` only shows
    the form.

What comes back
    Pages are built by :mod:`oracles.web.page`, which escapes every value; a strict
    Content-Security-Policy (scripts and styles from this server only, no framing) backs that
    up. A refused answer is shown with its reason: 403 not your item, 409 already answered or
    the batch has closed, 422 not a label (or refused by the loop), 401 no valid token.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fastapi import FastAPI, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from oracles.web import page
from oracles.web.board import Board, Refusal, View
from oracles.web.bodies import ANSWER_FORM, ANSWER_JSON, CSRF_FORM, LOGIN_FORM, UNDO_JSON
from oracles.web.guards import BodyLimit, FailureBudget, Sessions
from oracles.web.tokens import TokenStore

COOKIE = "alloop_session"
#: largest request body read (forms and JSON answers are tiny)
MAX_BODY = 64 * 1024

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def csrf_token(secret: str) -> str:
    """The CSRF token of a session: an HMAC keyed by the session's secret (its id, or the
    Bearer token)."""
    return hmac.new(secret.encode("utf-8"), b"alloop-csrf-v1", hashlib.sha256).hexdigest()


class _Caller:
    """An authenticated request: who, how (``bearer`` or ``cookie``), and its secret (the
    session id, or the Bearer token)."""

    def __init__(self, annotator: str, via: str, token: str) -> None:
        self.annotator, self.via, self.token = annotator, via, token

    @property
    def csrf(self) -> str:
        return csrf_token(self.token)


def create_app(board: Board, tokens: TokenStore, *, failure_budget: FailureBudget | None = None,
               openapi: bool = False) -> FastAPI:
    """The annotation app over ``board``, authenticating with ``tokens``.

    ``failure_budget`` limits bad tokens per client (default: 20 a minute); ``openapi`` serves
    the schema at ``/openapi.json`` (for the API fuzz tests; off when the loop serves the page).
    """
    app = FastAPI(title="alloop annotation", docs_url=None, redoc_url=None,
                  openapi_url="/openapi.json" if openapi else None)
    app.add_middleware(BodyLimit, limit=MAX_BODY)
    sessions = Sessions()
    budget = failure_budget or FailureBudget()

    def client_of(request: Request) -> str:
        return request.client.host if request.client else "?"

    def checked_token(request: Request, token: str) -> str | None:
        """The token's annotator, within the client's failure budget (429 beyond it)."""
        client = client_of(request)
        wait = budget.retry_after(client)
        if wait is not None:
            raise Refusal(429, f"too many bad tokens from this address; try again in {wait} s",
                          retry_after=wait)
        annotator = tokens.verify(token)
        if annotator is None:
            budget.fail(client)
        return annotator

    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    # ------------------------------------------------------------ helpers
    def identify(request: Request) -> _Caller:
        header = request.headers.get("authorization")
        if header is not None:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Refusal(401, "the Authorization header must be 'Bearer <token>'")
            via, secret, token = "bearer", token.strip(), token.strip()
        else:
            secret = request.cookies.get(COOKIE) or ""
            via = "cookie"
            session = sessions.get(secret) if secret else None
            if session is None:
                raise Refusal(401, "sign in with your annotator token" if not secret else
                              "your session has ended (signed out, or the page restarted); "
                              "sign in again")
            token = session.token
        annotator = checked_token(request, token)
        if annotator is None:
            if via == "cookie":
                sessions.close(secret)
            raise Refusal(401, "the token is not valid (wrong, or revoked); sign in with your "
                               "current token")
        if annotator not in board.annotators:
            raise Refusal(403, f"annotator {annotator!r} has a token but is not an annotator of "
                               f"this run (annotators: {', '.join(board.annotators)})")
        return _Caller(annotator, via, secret)

    def check_origin(request: Request) -> None:
        origin = request.headers.get("origin")
        if origin is None or origin == "null":
            return  # no Origin (older browsers, same-origin GET-like posts): the CSRF token rules
        if urlsplit(origin).netloc != request.headers.get("host", ""):
            raise Refusal(403, f"a form from {origin!r} may not post here")

    def check_csrf(request: Request, caller: _Caller, sent: str | None) -> None:
        if caller.via == "bearer":
            return
        check_origin(request)
        if not sent or not hmac.compare_digest(sent, caller.csrf):
            raise Refusal(403, "the form's security token is missing or stale; reload the page "
                               "and answer again")

    async def read_form(request: Request) -> dict[str, str]:
        body = await request.body()
        if len(body) > MAX_BODY:
            raise Refusal(413, "the request is too large")
        kind = request.headers.get("content-type", "").split(";")[0].strip()
        if kind != "application/x-www-form-urlencoded":
            raise Refusal(415, "post the form as application/x-www-form-urlencoded")
        fields = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
        return {k: v[-1] for k, v in fields.items()}

    async def read_json(request: Request) -> dict[str, Any]:
        body = await request.body()
        if len(body) > MAX_BODY:
            raise Refusal(413, "the request is too large")
        try:
            data = json.loads(body or b"{}")
        except ValueError as exc:
            raise Refusal(400, f"the body is not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise Refusal(400, "the body must be a JSON object")
        return data

    def render(caller: _Caller, status: int = 200, error: str | None = None,
               notice: str | None = None) -> HTMLResponse:
        view = board.view(caller.annotator)
        return HTMLResponse(page.annotate_page(view, board.choices, caller.csrf, error, notice),
                            status_code=status)

    def login_response(status: int, message: str | None, exc: Refusal | None = None) -> HTMLResponse:
        return HTMLResponse(page.login_page(message), status_code=status,
                            headers=_retry_header(exc))

    def view_json(view: View) -> dict[str, Any]:
        return {
            "annotator": view.annotator, "state": view.state, "batch": view.batch,
            "round": view.round, "assigned": view.assigned, "answered": view.answered,
            "pending": view.assigned - view.answered, "batch_answered": view.batch_answered,
            "batch_total": view.batch_total, "run_answered": view.run_answered,
            "can_undo": view.can_undo,
        }

    def refused(exc: Refusal) -> JSONResponse:
        return JSONResponse({"detail": exc.message}, status_code=exc.status,
                            headers=_retry_header(exc))

    # ------------------------------------------------------------ open routes
    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/static/annotate.js")
    def script() -> Response:
        return Response(page.SCRIPT, media_type="text/javascript")

    @app.get("/static/annotate.css")
    def style() -> Response:
        return Response(page.STYLE, media_type="text/css")

    def sign_in(request: Request, token: str) -> Response:
        try:
            annotator = checked_token(request, token.strip())
        except Refusal as exc:
            return login_response(exc.status, exc.message, exc)
        if annotator is None:
            return login_response(401, "that token is not valid (wrong, or revoked)")
        if annotator not in board.annotators:
            return login_response(403, f"annotator {annotator!r} is not an annotator of this run")
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(COOKIE, sessions.open(annotator, token.strip()), httponly=True,
                            samesite="strict", secure=request.url.scheme == "https", path="/")
        return response

    @app.get("/login")
    def login_form() -> Response:
        # Only the form: a GET that signed in would let another site sign a visitor in under
        # its own token (login CSRF). A link's #token= fragment only fills the form in.
        return login_response(200, None)

    @app.post("/login", openapi_extra=LOGIN_FORM)
    async def login(request: Request) -> Response:
        try:
            if request.headers.get("sec-fetch-site") == "cross-site":
                raise Refusal(403, "sign in from this page, not from another site")
            check_origin(request)
            form = await read_form(request)
        except Refusal as exc:
            return login_response(exc.status, exc.message)
        return await run_in_threadpool(sign_in, request, form.get("token", ""))

    # ------------------------------------------------------------ the page
    @app.get("/")
    def annotate(request: Request) -> Response:
        try:
            caller = identify(request)
        except Refusal as exc:
            shown = exc.message if request.cookies.get(COOKIE) or exc.status == 429 else None
            return login_response(exc.status, shown, exc)
        return render(caller)

    async def page_post(request: Request, act: Callable[[_Caller, dict[str, str]], str | None]
                        ) -> Response:
        try:
            caller = await run_in_threadpool(identify, request)
        except Refusal as exc:
            return login_response(exc.status, exc.message, exc)
        try:
            form = await read_form(request)
            check_csrf(request, caller, form.get("csrf"))
            notice = await run_in_threadpool(act, caller, form)
        except Refusal as exc:
            return render(caller, exc.status, error=exc.message)
        if notice is None:
            return RedirectResponse("/", status_code=303)
        return render(caller, 200, notice=notice)

    @app.post("/answer", openapi_extra=ANSWER_FORM)
    async def answer(request: Request) -> Response:
        def act(caller: _Caller, form: dict[str, str]) -> None:
            if "item_id" not in form or "answer" not in form:
                raise Refusal(400, "the form must send item_id and answer")
            board.submit(caller.annotator, form["item_id"], form["answer"], form.get("batch"))

        return await page_post(request, act)

    @app.post("/undo", openapi_extra=CSRF_FORM)
    async def undo(request: Request) -> Response:
        def act(caller: _Caller, form: dict[str, str]) -> str:
            item = board.undo(caller.annotator, form.get("batch") or None)
            return f"item {item} is open again: answer it anew (your earlier answer stays in " \
                   "the history; the new one replaces it as your vote)"

        return await page_post(request, act)

    @app.post("/logout", openapi_extra=CSRF_FORM)
    async def logout(request: Request) -> Response:
        try:
            caller = await run_in_threadpool(identify, request)
            form = await read_form(request)
            check_csrf(request, caller, form.get("csrf"))
        except Refusal as exc:
            return login_response(exc.status, exc.message, exc)
        if caller.via == "cookie":
            sessions.close(caller.token)  # the id is dead even if a copy of the cookie is kept
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    @app.get("/image/{batch}/{item_id}")
    def image(request: Request, batch: str, item_id: str) -> Response:
        try:
            caller = identify(request)
            display = board.item_display(caller.annotator, batch, item_id)
        except Refusal as exc:
            return refused(exc)
        if display.image_path is None:
            return JSONResponse({"detail": f"item {item_id!r} has no image"}, status_code=404)
        return FileResponse(display.image_path, media_type="image/png")

    # ------------------------------------------------------------ JSON API
    @app.get("/api/status")
    def status(request: Request) -> Response:
        try:
            caller = identify(request)
        except Refusal as exc:
            return refused(exc)
        return JSONResponse(view_json(board.view(caller.annotator)))

    @app.get("/api/next")
    def next_item(request: Request) -> Response:
        try:
            caller = identify(request)
        except Refusal as exc:
            return refused(exc)
        view = board.view(caller.annotator)
        item = None
        d = view.display
        if d is not None:
            item = {
                "item_id": d.item_id, "kind": d.kind, "text": d.text,
                "table": [list(row) for row in d.table] or None,
                "image_url": f"/image/{view.batch}/{d.item_id}" if d.image_path else None,
                "prediction": d.prediction, "score": d.score, "proposed": d.proposed,
            }
        labels = [c.value for c in board.choices] or None
        return JSONResponse({**view_json(view), "item": item, "labels": labels})

    async def api_post(request: Request, act: Callable[[_Caller, dict[str, Any]], dict[str, Any]]
                       ) -> Response:
        try:
            caller = await run_in_threadpool(identify, request)
            data = await read_json(request)
            check_csrf(request, caller, request.headers.get("x-csrf-token"))
            return JSONResponse(await run_in_threadpool(act, caller, data))
        except Refusal as exc:
            return refused(exc)

    @app.post("/api/answer", openapi_extra=ANSWER_JSON)
    async def api_answer(request: Request) -> Response:
        def act(caller: _Caller, data: dict[str, Any]) -> dict[str, Any]:
            if "item_id" not in data or "label" not in data:
                raise Refusal(400, 'send {"item_id": ..., "label": ...} (label may be "skip" '
                                   'or "unsure")')
            batch = data.get("batch")
            given = board.submit(caller.annotator, str(data["item_id"]), data["label"],
                                 None if batch is None else str(batch))
            return {"item_id": given.item_id, "kind": given.kind, "label": given.label,
                    "annotator": given.annotator}

        return await api_post(request, act)

    @app.post("/api/undo", openapi_extra=UNDO_JSON)
    async def api_undo(request: Request) -> Response:
        def act(caller: _Caller, data: dict[str, Any]) -> dict[str, Any]:
            batch = data.get("batch")
            return {"reopened": board.undo(caller.annotator, None if batch is None else str(batch))}

        return await api_post(request, act)

    return app


def _retry_header(exc: Refusal | None) -> dict[str, str] | None:
    wait = None if exc is None else exc.retry_after
    return {"Retry-After": str(wait)} if wait is not None else None
