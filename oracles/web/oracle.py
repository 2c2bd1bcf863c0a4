"""WebOracle: a team answers through a web page served while the loop runs.

The server (uvicorn, in a daemon thread) starts with the first request, or with
:meth:`WebOracle.start`, and stays up across rounds, so annotators keep their page: between
rounds it says "waiting for the next batch" and shows the next one when it comes. Each round's
batch is split among the annotators by an assignment policy of :mod:`oracles.annotators`
(``k`` annotators per item for redundancy); each answer is checked and handed to the loop's
``on_answer`` the moment it is posted, and committed to the label store before the page moves
on.
"""

from __future__ import annotations

import logging
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from oracles.annotators import AssignmentPolicy, Dealer, annotator_id
from oracles.answers import AnswerParser
from oracles.base import Answer, AnswerSink, Assignment, AssignmentSink, Query
from oracles.instructions import tell, web_instructions
from oracles.people import PeopleOracle, check_wait_settings
from oracles.web.board import Board
from oracles.web.tokens import TokenStore

log = logging.getLogger(__name__)


class WebOracle(PeopleOracle):
    """Ask a team of annotators through a web page.

    Parameters
    ----------
    annotators : sequence of str
        The annotator ids; each signs in with a token made by
        ``alloop annotate token CONFIG --annotator ID`` (or :meth:`TokenStore.create`).
    tokens : str or Path
        The token file (SQLite; hashes only).
    host, port : str, int
        Where the page listens. The default host, 127.0.0.1, takes connections from this machine
        only; put a TLS proxy in front to serve a team elsewhere. Port 0 picks a free port.
    k : int
        Annotators per item.
    policy : "round-robin", "least-loaded" or an AssignmentPolicy
    seed : int
        Seeds the policy's draws.
    image_dir : str or Path, optional
        Where PNGs of pixel items are written (default: a temporary folder, removed by
        :meth:`close`).
    task, classes, feature_names, show_prediction, show_score
        What is asked and shown (see :class:`~oracles.display.QueryDisplay`).
    min_share : float
        A request returns once this share of its (item, annotator) assignments is answered
        (skip and unsure count).
    timeout : float, optional
        Seconds a request waits at most; then it returns what has been answered (the rest is
        offered again next round, as the loop's ``unanswered`` setting says).
    announce : bool
        Print the page's address to standard error when the server starts.

    Attributes
    ----------
    url : str or None
        The page's address once the server runs.
    timed_out, quit_requested : bool
        Whether the last request ended by its timeout (or :meth:`cancel`), or by Ctrl-C.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> oracle = WebOracle(["ann", "bob"], tokens=folder / "tokens.sqlite", port=0,
    ...                    classes=["ham", "spam"], timeout=0, announce=False)
    >>> oracle.start().startswith("http://127.0.0.1:")
    True
    >>> oracle.request([Query("m1", raw="free money")])  # nobody answers within the timeout
    []
    >>> oracle.close()
    """

    def __init__(
        self,
        annotators: Sequence[str],
        *,
        tokens: str | Path,
        host: str = "127.0.0.1",
        port: int = 8765,
        k: int = 1,
        policy: str | AssignmentPolicy = "round-robin",
        seed: int = 0,
        image_dir: str | Path | None = None,
        task: str = "classification",
        classes: Sequence[Any] | None = None,
        feature_names: Sequence[str] | None = None,
        show_prediction: bool = True,
        show_score: bool = True,
        min_share: float = 1.0,
        timeout: float | None = None,
        announce: bool = True,
    ) -> None:
        ids = [annotator_id(a) for a in annotators]
        if not ids:
            raise ValueError("WebOracle needs at least one annotator id, e.g. ['ann', 'bob']")
        if len(set(ids)) != len(ids):
            raise ValueError(f"annotator ids must be distinct; got {ids!r}")
        self.dealer = Dealer(ids, k, policy, seed)
        check_wait_settings(min_share, timeout)  # before the temporary image folder is made
        if not 0 <= int(port) <= 65535:
            raise ValueError(f"port must be in 0..65535 (0: any free port); got {port!r}")
        self.annotators = ids
        self.tokens = TokenStore(tokens)
        self.host, self.port = host, int(port)
        self.k, self.policy = self.dealer.k, self.dealer.policy
        self.announce = announce
        self._own_images = image_dir is None
        self.image_dir = Path(tempfile.mkdtemp(prefix="alloop-web-")) if image_dir is None \
            else Path(image_dir)
        super().__init__(min_share=min_share, timeout=timeout, image_dir=self.image_dir,
                         feature_names=feature_names, show_prediction=show_prediction,
                         show_score=show_score)
        self.board = Board(ids, AnswerParser(classes, task), self.display)
        self._assignment_sink: AssignmentSink | None = None
        self.assignment: dict[str, tuple[str, ...]] = {}
        self.url: str | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        where = self.url or f"http://{self.host}:{self.port}/ (not started)"
        return f"WebOracle({self.annotators!r}, {where})"

    # ----------------------------------------------------------------- server
    def start(self, wait: float = 30.0) -> str:
        """Start serving the page (if not yet) and return its address."""
        with self._lock:
            if self._thread is not None:
                assert self.url is not None
                return self.url
            import uvicorn

            from oracles.web.app import create_app

            family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((self.host, self.port))
            except OSError as exc:
                sock.close()
                raise OSError(
                    f"the annotation page cannot listen on {self.host}:{self.port} ({exc.strerror}); "
                    "set oracle.port to a free port, or 0 for any free port"
                ) from exc
            sock.listen(128)
            port = sock.getsockname()[1]
            config = uvicorn.Config(
                create_app(self.board, self.tokens), log_level="warning", access_log=False,
                lifespan="off", timeout_graceful_shutdown=2,
            )
            server = uvicorn.Server(config)
            server.install_signal_handlers = lambda: None  # the loop's thread keeps Ctrl-C
            thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                                      name="alloop-web", daemon=True)
            thread.start()
            deadline = time.monotonic() + wait
            while not server.started:
                if not thread.is_alive() or time.monotonic() > deadline:
                    server.should_exit = True
                    sock.close()
                    raise RuntimeError(f"the annotation page did not start on {self.host}:{port}")
                time.sleep(0.02)
            self._server, self._thread, self._socket = server, thread, sock
            shown = f"[{self.host}]" if family == socket.AF_INET6 else self.host
            self.url = f"http://{shown}:{port}/"
        missing = sorted(set(self.annotators) - {t.annotator for t in self.tokens.list() if t.active})
        if self.announce:
            tell(*web_instructions(self.url, None, None, missing))
        log.info("annotation page serving at %s", self.url)
        return self.url

    def close(self) -> None:
        """Tell open pages the run is over, stop the server and remove temporary images."""
        self.board.finish()
        self._stop.set()
        with self._lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
            if server is not None:
                server.should_exit = True
            if thread is not None:
                thread.join(timeout=10)
            if self._socket is not None:
                self._socket.close()
                self._socket = None
            self.url = None
        if self._own_images:
            shutil.rmtree(self.image_dir, ignore_errors=True)

    def __enter__(self) -> WebOracle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def set_assignment_sink(self, sink: AssignmentSink | None) -> None:
        """Call ``sink`` with each batch's assignment (item → annotators) before it is shown
        (the loop persists assignments in the label store)."""
        self._assignment_sink = sink

    def keep_assignment(self, pending: Assignment) -> None:
        """Give the next batch's items named here to exactly these annotators (a resumed round
        asks only the assignments that have no answer yet)."""
        self.dealer.keep(pending)

    # ----------------------------------------------------------------- asking
    def _ask_people(self, queries: list[Query], on_answer: AnswerSink | None) -> list[Answer]:
        """Show the batch on the page and wait for its answers (see the class notes)."""
        self.start()
        round_ = queries[0].round
        self.assignment = self.dealer.deal(queries)  # a resumed round: its kept assignment
        if self._assignment_sink is not None:
            self._assignment_sink(dict(self.assignment))
        batch = self.board.open(queries, self.assignment, on_answer, self.min_share)
        log.info("round %d: %d items on the annotation page %s", round_, len(queries), self.url)
        deadline = self._deadline()
        try:
            done = self.board.wait(batch, deadline, self._stop)
            self.timed_out = not done
        except KeyboardInterrupt:
            self.quit_requested = True
        return self.board.close(batch)
