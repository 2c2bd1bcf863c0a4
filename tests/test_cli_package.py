"""The CLI package: one error handler, one spelling per option (old spellings name the new one)."""

from __future__ import annotations

import typer
import yaml
from typer.testing import CliRunner

from alloop.cli import app
from alloop.cli.errors import EXIT_INTERRUPTED, EXIT_USAGE, reported


def small_app(error: BaseException) -> typer.Typer:
    demo = typer.Typer()

    @demo.command()
    @reported
    def go(flag: bool = False) -> None:
        raise error

    demo.command("noop")(lambda: None)
    return demo


def test_one_handler_turns_user_errors_into_a_message_and_exit_2():
    for error in (ValueError("bad value [x]"), KeyError("no such key"), RuntimeError("store busy"),
                  FileNotFoundError("gone.csv")):
        result = CliRunner().invoke(small_app(error), ["go"])
        assert result.exit_code == EXIT_USAGE, result.output
        assert result.stderr.startswith("error: ") and str(error).strip("'") in result.stderr
    interrupted = CliRunner().invoke(small_app(KeyboardInterrupt()), ["go"])
    assert interrupted.exit_code == EXIT_INTERRUPTED
    bug = CliRunner().invoke(small_app(ZeroDivisionError("a bug")), ["go"])
    assert isinstance(bug.exception, ZeroDivisionError)  # a bug keeps its traceback


def test_ray_is_spelt_the_same_on_run_and_compare():
    for command in ("run", "compare"):
        shown = CliRunner().invoke(app, [command, "--help"], terminal_width=200).output
        assert "--ray" in shown and "--backend" not in shown and "--address" not in shown


def test_old_spellings_name_the_new_one(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"name": "c", "data": {"source": "sklearn:iris"},
                                    "compare": {"strategies": ["random"], "seeds": 1}}))
    for args, fix in ((["compare", str(path), "--backend", "ray"], "--backend is now --ray"),
                      (["compare", str(path), "--address", "auto"], "--address is now --ray ADDR"),
                      (["labels", "export", str(tmp_path / "s.sqlite"), "--rule", "majority"],
                       "--rule is now --label-rule")):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == EXIT_USAGE and fix in result.stderr, result.output


def test_a_bad_config_reaches_the_user_as_one_message(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"name": "b", "data": {"source": "sklearn:iris"},
                                    "oracle": {"aggregate": "majority"}}))
    for args in (["run", str(path)], ["labels", "export", str(path)]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == EXIT_USAGE
        assert "oracle.aggregate: this field is gone; write oracle.label_rule" in result.stderr
