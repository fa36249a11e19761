"""Helpers for driving `pmsr` in tests: in-process calls of `main(argv)` and subprocesses.

In-process calls are fast because they skip the interpreter's start-up. Subprocesses serve where a
command must outlive the test's call (`pmsr chain up`) or run in the background (`run` commands).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from offchain_workers.cli.main import main

REPOSITORY = Path(__file__).resolve().parents[2]
PMSR = Path(sys.executable).parent / "pmsr"

# Variables that would leak the developer's own settings into a test.
_CLEARED = ("PMSR_RPC_URL", "PMSR_KEYSTORE", "PMSR_PASSWORD", "PMSR_DATA_DIR")


@dataclass(frozen=True)
class CliResult:
    status: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


@contextlib.contextmanager
def patched_environment(values: Mapping[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in (*_CLEARED, *values)}
    for name in _CLEARED:
        os.environ.pop(name, None)
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run_cli(*args: str, env: Mapping[str, str] | None = None) -> CliResult:
    """Run `pmsr ARGS` in this process and capture its exit status, stdout and stderr."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with patched_environment(env or {}), contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        status = main([str(arg) for arg in args])
    return CliResult(status, stdout.getvalue(), stderr.getvalue())


def subprocess_environment(extra: Mapping[str, str]) -> dict[str, str]:
    environment = {name: value for name, value in os.environ.items() if name not in _CLEARED}
    environment.update(extra)
    return environment


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def file_state(directory: Path) -> dict[str, tuple[int, int]]:
    """Size and modification time of every file under `directory`, to show that nothing changed."""
    return {
        str(path.relative_to(directory)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in sorted(Path(directory).rglob("*"))
        if path.is_file()
    }


def assert_one_line_error(result: CliResult, *fragments: str, status: int = 1) -> None:
    """Check the error contract: the exit status, one `error:` line naming `fragments`, no traceback."""
    assert result.status == status, result
    assert result.error_lines == [result.error_lines[0]], result.stderr
    line = result.error_lines[0]
    assert line.startswith("error: "), line
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in {line!r}"
