"""The code's own checks, run by the test command so CI runs them: ruff's lint rules, ruff's
formatting and the type checker (mypy) over the package."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *cmd], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def test_ruff_lint_is_clean():
    out = run("ruff", "check", ".")
    assert out.returncode == 0, out.stdout + out.stderr


def test_ruff_format_is_applied():
    out = run("ruff", "format", "--check", ".")
    assert out.returncode == 0, out.stdout + out.stderr


def test_types_check():
    out = run("mypy")
    assert out.returncode == 0, out.stdout[-5000:] + out.stderr[-2000:]
