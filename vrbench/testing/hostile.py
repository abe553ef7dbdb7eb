"""Strings a user can type where vrbench shows text: suite and label names, method names in run files, messages.

Each one once broke, or could break, one of the renderers: matplotlib's mathtext (``$...$``), rich's console
markup (``[...]``), HTML, LaTeX, Markdown tables, one-line logs (newlines, terminal escapes). Tests push all of
them through every place they are shown; a new renderer should be tested with the same list.
"""

from __future__ import annotations

# name -> the string; names make parametrized test ids readable.
HOSTILE_STRINGS: dict[str, str] = {
    "mathtext-open": "ilm $\\alpha_{$ variant",
    "mathtext-pair": "ours $x^2$ run",
    "mathtext-lone-dollar": "costs $5",
    "mathtext-frac": "$\\frac{1}{0}$",
    "rich-close": "a[/]b",
    "rich-style": "[bold red]loud[/bold red]",
    "rich-unclosed-tag": "[/italic] x",
    "rich-link": "[link=file:///etc/passwd]click[/link]",
    "rich-escaped": "\\[not markup]",
    "newline": "two\nlines",
    "carriage-return": "over\rwritten",
    "terminal-escape": "\x1b[31mred\x1b[0m",
    "tab-and-bell": "tab\tbell\a",
    "html": "<script>alert('x')</script> & \"q\"",
    "latex": "\\input{/etc/passwd} 50% & _ # ^ ~ {}",
    "latex-end": "\\end{document}",
    "markdown": "a | b **bold** `code` <br>",
    "format-specs": "{0} {x!r} %s %(y)d",
    "sql": "'; DROP TABLE runs; --",
    "unicode": "ünïcödé · 日本語 · \u202eRTL",
    "long": "x" * 300,
}

# The subset that is a plain single-line label (what a suite's `label:` most often holds): no control characters.
ONE_LINE = {name: text for name, text in HOSTILE_STRINGS.items()
            if not any(ord(c) < 32 or ord(c) == 127 for c in text)}
