"""Helpers for the demo tests: run `pmsr demo ...` in this process and capture what it prints.

Each demo run is a whole market (its own Anvil, aggregator, owner-fleet and keeper processes), so
every module runs each demo once, in a module-scoped fixture, and its tests read that one report.
"""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass
from typing import Any

from offchain_workers.cli.main import main


@dataclass(frozen=True)
class DemoRun:
    status: int
    stdout: str
    stderr: str

    def report(self) -> Any:
        """Parse stdout, which in JSON mode must be exactly one JSON document."""
        return json.loads(self.stdout)


def run_demo(*args: str) -> DemoRun:
    """Run `pmsr demo ARGS` in this process, capturing its exit status, stdout and stderr."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        status = main(["demo", *(str(arg) for arg in args)])
    return DemoRun(status, stdout.getvalue(), stderr.getvalue())
