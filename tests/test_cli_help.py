"""`vrbench --help` reads cleanly: every line of its panels the same width, each command's help a sentence."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from typer.main import get_command

from vrbench.cli import app


@pytest.mark.parametrize("width", [60, 80, 97, 120, 160])
def test_help_panels_are_rectangular(width: int) -> None:
    result = CliRunner().invoke(get_command(app), ["--help"], env={"COLUMNS": str(width)}, terminal_width=width)
    assert result.exit_code == 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert {len(line) for line in lines if line[0] in "╭│╰"} == {width}, result.output


def test_every_command_help_starts_with_a_capital_and_its_first_paragraph_is_one_line() -> None:
    group = get_command(app)
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        text = (command.help or "").strip()
        first = text.split("\n\n")[0]
        assert next(c for c in text if c.isalpha()).isupper(), (name, text)  # "(Re)build" counts
        assert "\n" not in first.strip(), (name, first)  # a hard break inside the listed summary shifts its row
