"""The one place where a failure becomes a message and an exit code.

Every command is wrapped in :func:`reported`: a bad config, a bad value, a missing file or a
store that refuses (:class:`~alloop.config.ConfigError` and the store's errors are ValueError
or RuntimeError) prints ``error: MESSAGE`` on stderr and exits 2; Ctrl-C exits 130. No
traceback reaches a user for a problem they can fix.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

#: a problem the user can fix (config, option, file, store state).
EXIT_USAGE = 2
#: a check that ran and found something wrong (a broken hash chain).
EXIT_FOUND = 1
#: interrupted by Ctrl-C or a signal.
EXIT_INTERRUPTED = 130

#: what a command may raise for a user's mistake; anything else is a bug and keeps its traceback.
USER_ERRORS = (ValueError, KeyError, RuntimeError, OSError)

console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print ``error: message`` on stderr and exit with ``code``."""
    # escaped: a message quoting a config (``strategies: [random, entropy]``) is not markup;
    # soft_wrap: paths and commands in it stay whole for copying
    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=code)


def message_of(exc: BaseException) -> str:
    """The text of an exception; a KeyError's quotes stripped."""
    return str(exc).strip("'\"")


def reported(command: F) -> F:
    """``command`` with :data:`USER_ERRORS` turned into :func:`fail` and Ctrl-C into exit 130."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except KeyboardInterrupt:
            console.print("interrupted", highlight=False)
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except USER_ERRORS as exc:
            fail(message_of(exc))

    return wrapper  # type: ignore[return-value]


def renamed_option(old: str, new: str) -> Callable[[Any], Any]:
    """A hidden option's callback: an old spelling fails with the new one (``--rule``)."""

    def callback(value: Any) -> Any:
        if value not in (None, False):
            fail(f"{old} is now {new}")
        return value

    return callback
