"""User text on a rich console, shown as typed: never read as markup, never breaking a one-line log.

Suite names, labels, method names from run files, error messages and paths are the user's; rich reads ``[...]`` in
them as markup (``a[/]b`` raised MarkupError and killed `vrbench run` after it had claimed a job), and a newline or a
terminal escape in a label splits or repaints a log line. Every such string goes through :func:`literal` (or
:func:`escape` where a multi-line message is meant) before rich renders it. No torch here: `status` imports it.
"""

from __future__ import annotations

from typing import Any

from rich.markup import escape as _escape_markup

# C0 and C1 control characters and the bidirectional overrides/isolates (they reorder what a terminal shows).
_INVISIBLE = [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0), *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_VISIBLE = {code: repr(chr(code))[1:-1] if code < 0x80 or code == 0x7F else f"\\u{code:04x}" for code in _INVISIBLE}


def one_line(text: Any) -> str:
    """``text`` on one line: newlines, tabs, escapes and other invisible characters written as ``\\n``, ``\\x1b``..."""
    return str(text).translate(_VISIBLE)


def literal(text: Any) -> str:
    """``text`` for a rich markup string or table cell, shown exactly as typed, on one line."""
    return _escape_markup(one_line(text))


def escape(text: Any) -> str:
    """``text`` for rich markup, shown as typed; line breaks kept (multi-line error messages)."""
    lines = str(text).split("\n")
    return "\n".join(_escape_markup(one_line(line)) for line in lines)
