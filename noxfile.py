"""Developer sessions: `nox -s tests`, `nox -s lint`, `nox -s smoke` (reuse venvs with `nox -R`)."""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite, slow end-to-end tests included (pass `-- -m "not slow"` for the fast part)."""
    session.install("-e", ".[dev]")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", ".")


@nox.session
def smoke(session: nox.Session) -> None:
    """The embedded default suite, offline on a CPU, then its Markdown report."""
    session.install("-e", ".")
    session.run("vrbench", "run", "suites/smoke.yaml")
    session.run("vrbench", "report", "--suite", "suites/smoke.yaml", "--format", "md")
