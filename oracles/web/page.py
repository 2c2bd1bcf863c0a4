"""The annotation page's HTML, script and style.

Every value that comes from data or from people (item text, feature names and values, labels,
ids, messages) goes through :func:`e` (``html.escape`` with quotes), so HTML in an item shows as
text. The page has no inline script or style: the server's Content-Security-Policy allows only
``/static/annotate.js`` and ``/static/annotate.css``, which is a second wall should an escape
ever be missed.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from oracles.web.board import Choice, View


def e(value: Any) -> str:
    """``value`` as HTML text: ``& < > " '`` escaped."""
    return html.escape(str(value), quote=True)


def _document(title: str, body: str) -> str:
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{e(title)}</title><link rel=\"stylesheet\" href=\"/static/annotate.css\">"
        "<script src=\"/static/annotate.js\" defer></script></head>\n"
        f"<body>{body}</body></html>\n"
    )


def _hidden(name: str, value: str) -> str:
    return f"<input type=\"hidden\" name=\"{e(name)}\" value=\"{e(value)}\">"


def login_page(message: str | None = None) -> str:
    """The sign-in form (a token is pasted; it is sent by POST, never kept in the address)."""
    note = f"<p class=\"error\" role=\"alert\">{e(message)}</p>" if message else ""
    body = (
        "<main class=\"login\"><h1>alloop · annotation</h1>"
        f"{note}<form method=\"post\" action=\"/login\">"
        "<label for=\"token\">Your annotator token</label>"
        "<input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"off\" required>"
        "<button type=\"submit\">Sign in</button></form>"
        "<p class=\"hint\">Ask whoever runs the loop for a token "
        "(<code>alloop annotate token CONFIG --annotator YOUR-ID</code>).</p></main>"
    )
    return _document("alloop · sign in", body)


def _item(view: View, batch: str) -> str:
    d = view.display
    assert d is not None
    if d.kind == "text":
        content = f"<div class=\"text\" id=\"item-text\">{e(d.text or '')}</div>"
    elif d.kind == "image":
        if d.image_path is not None:
            content = (f"<img class=\"pixels\" src=\"/image/{e(batch)}/{e(d.item_id)}\" "
                       f"alt=\"item {e(d.item_id)}\">")
        else:
            content = f"<pre class=\"preview\">{e(d.preview or '')}</pre>"
    elif d.kind == "table":
        rows = "".join(f"<tr><th scope=\"row\">{e(k)}</th><td>{e(v)}</td></tr>" for k, v in d.table)
        content = f"<table class=\"features\"><tbody>{rows}</tbody></table>"
    else:
        content = "<p class=\"hint\">(this item has nothing to show)</p>"
    words = {"prediction": "<li>model predicts <strong>{}</strong></li>",
             "score": "<li>query score {}</li>",
             "proposed": "<li>proposed label <strong>{}</strong> (a relabel check)</li>"}
    facts = [words[name].format(e(text)) for name, text in d.facts()]
    facts_html = f"<ul class=\"facts\">{''.join(facts)}</ul>" if facts else ""
    return (f"<section class=\"item\" id=\"item\" data-item-id=\"{e(d.item_id)}\">"
            f"<h2>item <code>{e(d.item_id)}</code></h2>{content}{facts_html}</section>")


def _answer_form(view: View, choices: Sequence[Choice], csrf: str) -> str:
    d = view.display
    assert d is not None and view.batch is not None
    hidden = _hidden("csrf", csrf) + _hidden("batch", view.batch) + _hidden("item_id", d.item_id)
    if choices:
        buttons = "".join(
            f"<button type=\"submit\" name=\"answer\" value=\"{e(c.value)}\" class=\"label\""
            + (f" data-key=\"{e(c.key)}\"" if c.key else "")
            + ">"
            + (f"<kbd>{e(c.key)}</kbd> " if c.key else "")
            + f"{e(c.text)}</button>"
            for c in choices
        )
    else:  # regression: a number
        buttons = ("<input name=\"answer\" id=\"number\" inputmode=\"decimal\" "
                   "autocomplete=\"off\" placeholder=\"a number\">"
                   "<button type=\"submit\" class=\"label\">answer</button>")
    aside = ("<button type=\"submit\" name=\"answer\" value=\"skip\" data-key=\"s\" "
             "class=\"aside\"><kbd>s</kbd> skip</button>"
             "<button type=\"submit\" name=\"answer\" value=\"unsure\" data-key=\"u\" "
             "class=\"aside\"><kbd>u</kbd> unsure</button>")
    return (f"<form method=\"post\" action=\"/answer\" id=\"answer-form\">{hidden}"
            f"<div class=\"labels\">{buttons}</div><div class=\"asides\">{aside}</div></form>")


def _undo_form(view: View, csrf: str) -> str:
    disabled = "" if view.can_undo else " disabled"
    return (f"<form method=\"post\" action=\"/undo\" id=\"undo-form\">{_hidden('csrf', csrf)}"
            f"{_hidden('batch', view.batch or '')}"
            f"<button type=\"submit\" data-key=\"z\" class=\"undo\"{disabled}>"
            "<kbd>z</kbd> undo my last answer</button></form>")


def annotate_page(
    view: View, choices: Sequence[Choice], csrf: str, error: str | None = None,
    notice: str | None = None,
) -> str:
    """The page of one annotator: the next item, the answer buttons, undo and progress."""
    progress = (
        f"<span id=\"progress\" data-answered=\"{view.answered}\" data-assigned=\"{view.assigned}\">"
        f"{view.answered} / {view.assigned} of your items in this batch</span>"
        f" · <span id=\"batch-progress\">{view.batch_answered} / {view.batch_total} answers "
        "from everyone</span>"
        f" · <span id=\"run-total\">{view.run_answered} answered in this run</span>"
        if view.batch else
        f"<span id=\"run-total\">{view.run_answered} answered in this run</span>"
    )
    round_ = f" · round {e(view.round)}" if view.round is not None else ""
    header = (
        "<header><span class=\"brand\">alloop</span>"
        f"<span>annotating as <strong id=\"annotator\">{e(view.annotator)}</strong>{round_}</span>"
        f"<span class=\"progress\">{progress}</span>"
        f"<form method=\"post\" action=\"/logout\">{_hidden('csrf', csrf)}"
        "<button type=\"submit\" class=\"link\">sign out</button></form></header>"
    )
    messages = ""
    if error:
        messages += f"<p class=\"error\" role=\"alert\" id=\"error\">{e(error)}</p>"
    if notice:
        messages += f"<p class=\"notice\" role=\"status\" id=\"notice\">{e(notice)}</p>"
    if view.state == "item":
        main = (_item(view, view.batch or "") + _answer_form(view, choices, csrf)
                + _undo_form(view, csrf)
                + "<p class=\"hint\">keys: " + ", ".join(
                    f"<kbd>{e(c.key)}</kbd> {e(c.text)}" for c in choices if c.key)
                + (", " if any(c.key for c in choices) else "")
                + "<kbd>s</kbd> skip, <kbd>u</kbd> unsure, <kbd>z</kbd> undo</p>")
    else:
        waiting = {
            "done": "You have answered all your items in this batch. The next batch shows up "
                    "here when the loop asks for it.",
            "idle": "Waiting for the next batch…",
            "finished": "The run has finished. Thank you!",
        }[view.state]
        main = (f"<section class=\"waiting\" id=\"waiting\" data-state=\"{e(view.state)}\">"
                f"<p>{e(waiting)}</p></section>")
        if view.state == "done":
            main += _undo_form(view, csrf)
    body = (f"{header}<main data-batch=\"{e(view.batch or '')}\" data-state=\"{e(view.state)}\">"
            f"{messages}{main}</main>")
    return _document(f"alloop · {view.annotator}", body)


def message_page(title: str, message: str) -> str:
    """A page with one message (errors outside the annotation page)."""
    body = (f"<main class=\"login\"><h1>{e(title)}</h1>"
            f"<p class=\"error\" role=\"alert\">{e(message)}</p><p><a href=\"/\">back</a></p></main>")
    return _document(f"alloop · {title}", body)


SCRIPT = r"""
"use strict";
(function () {
  // A sign-in link ends in #token=...: the fragment never reaches a server. Fill the form with
  // it and clear it from the address; the person still presses "Sign in" (no login CSRF).
  var field = document.getElementById("token");
  if (field && location.hash.indexOf("#token=") === 0) {
    field.value = decodeURIComponent(location.hash.slice(7));
    history.replaceState(null, "", location.pathname);
  }
  // Keyboard shortcuts: 1-9 the labels, s skip, u unsure, z undo (not while typing a number).
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    var target = event.target;
    if (target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA")) return;
    var button = document.querySelector('button[data-key="' + CSS.escape(event.key) + '"]');
    if (button && !button.disabled) {
      event.preventDefault();
      button.click();
    }
  });
  // One answer per page: a second click while the first is on its way is not sent.
  document.querySelectorAll("form").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (form.dataset.sent) { event.preventDefault(); return; }
      form.dataset.sent = "1";
    });
  });
  document.documentElement.dataset.ready = "1";  // the keys work from now on
  // With nothing to answer, look for a new batch every 1.5 s and show it when it comes.
  var main = document.querySelector("main[data-state]");
  if (!main || main.dataset.state === "item" || main.dataset.state === "finished") return;
  var shown = main.dataset.batch || "";
  var state = main.dataset.state;
  function poll() {
    fetch("/api/status", {credentials: "same-origin", cache: "no-store"})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (s) {
        if (s && (s.pending > 0 || (s.batch || "") !== shown || s.state !== state)) {
          window.location.replace("/");
        } else {
          window.setTimeout(poll, 1500);
        }
      })
      .catch(function () { window.setTimeout(poll, 3000); });
  }
  window.setTimeout(poll, 1500);
})();
"""

STYLE = """
:root { --ink: #1d2330; --muted: #5b6475; --line: #d9dde5; --accent: #2457c5; --bad: #b3261e; }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.45 system-ui, sans-serif; color: var(--ink); background: #f6f7f9; }
header { display: flex; gap: 1.2em; align-items: center; flex-wrap: wrap; padding: .6em 1.2em;
         background: #fff; border-bottom: 1px solid var(--line); }
header .brand { font-weight: 700; color: var(--accent); }
header .progress { color: var(--muted); font-size: .92em; flex: 1; }
header form { margin: 0; }
main { max-width: 46em; margin: 1.5em auto; padding: 0 1em; }
.item { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 1em 1.2em; }
.item h2 { margin: 0 0 .6em; font-size: 1em; color: var(--muted); font-weight: 500; }
.text { white-space: pre-wrap; overflow-wrap: anywhere; font-size: 1.1em; }
.pixels { image-rendering: pixelated; max-width: 100%; border: 1px solid var(--line); }
.preview { font-size: 11px; line-height: 1; }
table.features { border-collapse: collapse; }
table.features th { text-align: left; padding: .15em 1.2em .15em 0; font-weight: 500;
                    color: var(--muted); }
table.features td { font-variant-numeric: tabular-nums; }
.facts { list-style: none; padding: 0; margin: .8em 0 0; color: var(--muted); display: flex;
         gap: 1.4em; flex-wrap: wrap; }
form { margin: 1em 0; }
.labels, .asides { display: flex; flex-wrap: wrap; gap: .5em; margin: .5em 0; }
button { font: inherit; padding: .45em .9em; border-radius: 6px; border: 1px solid var(--line);
         background: #fff; cursor: pointer; }
button.label { border-color: var(--accent); color: var(--accent); font-weight: 600; }
button.label:hover { background: var(--accent); color: #fff; }
button.aside, button.undo { color: var(--muted); }
button:disabled { opacity: .45; cursor: default; }
button.link { border: 0; background: none; color: var(--accent); padding: 0; }
kbd { font: .8em ui-monospace, monospace; border: 1px solid var(--line); border-radius: 3px;
      padding: 0 .3em; background: #f1f3f6; color: var(--ink); }
.error { color: var(--bad); background: #fdecea; border: 1px solid #f3c1bd; border-radius: 6px;
         padding: .5em .8em; }
.notice { color: var(--muted); }
.hint { color: var(--muted); font-size: .9em; }
.waiting { background: #fff; border: 1px dashed var(--line); border-radius: 8px; padding: 2em;
           text-align: center; color: var(--muted); }
.login { max-width: 26em; }
.login form { display: flex; flex-direction: column; gap: .5em; }
.login input { font: inherit; padding: .45em; }
#number { font: inherit; padding: .4em; width: 10em; }
"""
