"""Follow the README's walkthrough exactly: its commands, in its order, against the chain it starts.

The commands are read from the README's "Walkthrough" section, so the document and the test cannot
drift apart. `pmsr ... run` commands start as background processes (the README's extra terminals)
and are stopped with SIGINT before `pmsr chain down`, as the README instructs. `pmsr` commands that
return run in this process (fast); a command that waits (`--wait`) runs as a subprocess with a
time limit. Other lines (`printf`) run in bash. The only change to a command is a free port for
`pmsr chain up`, so the test never depends on port 8545 being free.
"""

from __future__ import annotations

import re
import shlex
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .helpers import PMSR, REPOSITORY, CliResult, free_port, run_cli, subprocess_environment

SERVICE_READY = ("is serving", "is watching")
READY_TIMEOUT = 120.0
WAIT_TIMEOUT = 300.0


def walkthrough_lines() -> list[str]:
    text = (REPOSITORY / "README.md").read_text()
    section = text.split("\n## Walkthrough\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.DOTALL)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


@dataclass
class Walkthrough:
    work_dir: Path
    env: dict[str, str]
    services: list[tuple[str, subprocess.Popen[bytes], Path]] = field(default_factory=list)
    outputs: dict[str, CliResult] = field(default_factory=dict)

    def start_service(self, line: str) -> None:
        """Start a `run` command; like the README's separate terminals, the next ones start right away."""
        log = self.work_dir / f"service-{len(self.services)}.log"
        with log.open("wb") as handle:
            process = subprocess.Popen(
                [str(PMSR), *shlex.split(line)[1:]], cwd=self.work_dir, env=subprocess_environment(self.env),
                stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        self.services.append((line, process, log))

    def wait_until_services_ready(self) -> None:
        """Wait for each service's start-up line, as the README instructs before going on."""
        deadline = time.monotonic() + READY_TIMEOUT
        for line, process, log in self.services:
            while not any(marker in log.read_text() for marker in SERVICE_READY):
                assert process.poll() is None, f"{line!r} exited with {process.returncode}:\n{log.read_text()}"
                assert time.monotonic() < deadline, f"{line!r} not ready after {READY_TIMEOUT:.0f} s:\n{log.read_text()}"
                time.sleep(0.2)

    def stop_services(self) -> None:
        for _, process, _ in self.services:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for line, process, log in self.services:
            try:
                status = process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                pytest.fail(f"{line!r} ignored SIGINT:\n{log.read_text()}")
            assert status == 0, f"{line!r} exited with {status}:\n{log.read_text()}"

    def run(self, line: str) -> None:
        arguments = shlex.split(line)
        is_service = arguments[0] == "pmsr" and len(arguments) > 2 and arguments[2] == "run"
        if not is_service:
            self.wait_until_services_ready()
        if arguments[0] == "export":
            name, _, value = arguments[1].partition("=")
            self.env[name] = value
        elif arguments[0] != "pmsr":
            subprocess.run(["bash", "-c", line], cwd=self.work_dir, env=subprocess_environment(self.env), check=True)
        elif is_service:
            self.start_service(line)
        elif "--wait" in arguments:
            completed = subprocess.run(
                [str(PMSR), *arguments[1:]], cwd=self.work_dir, env=subprocess_environment(self.env),
                capture_output=True, text=True, timeout=WAIT_TIMEOUT,
            )
            self.outputs[line] = CliResult(completed.returncode, completed.stdout, completed.stderr)
        else:
            if arguments[1:3] == ["chain", "up"]:
                arguments += ["--port", str(free_port())]
            if arguments[1:3] == ["chain", "down"]:
                self.stop_services()
            self.outputs[line] = run_cli(*arguments[1:], env=self.env)
        result = self.outputs.get(line)
        assert result is None or result.status == 0, f"{line!r} failed: {result}"

    def output(self, prefix: str) -> str:
        matches = [result.stdout for line, result in self.outputs.items() if line.startswith(prefix)]
        assert len(matches) == 1, f"expected one command starting with {prefix!r}, got {len(matches)}"
        return matches[0]


@pytest.fixture
def walkthrough(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Walkthrough]:
    work_dir = tmp_path / "work"
    work_dir.mkdir()
    monkeypatch.chdir(work_dir)
    state = Walkthrough(work_dir, {"PMSR_DATA_DIR": str(tmp_path / "pmsr")})
    yield state
    for _, process, _ in state.services:
        if process.poll() is None:
            process.kill()
            process.wait()
    run_cli("chain", "down", env=state.env)


def test_readme_walkthrough(walkthrough: Walkthrough) -> None:
    lines = walkthrough_lines()
    assert lines[0] == "pmsr chain up"
    assert lines[-1] == "pmsr chain down"

    for line in lines:
        walkthrough.run(line)

    proposal = walkthrough.output("pmsr query propose")
    assert "query 1: histogram over 3 owners (with DP noise)" in proposal
    bins = [row.split()[0] for row in proposal.splitlines()[2:]]
    assert bins == ["[0,250)", "[250,500)", "[500,750)", "[750,1000]"]

    result = walkthrough.output("pmsr query result 1")
    assert "query 1: histogram over 3 owners" in result
    plot = walkthrough.work_dir / "wages.png"
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # The analyst paid for four owner slots and three were used.
    assert "Refunded 0.001 ETH of query 1" in walkthrough.output("pmsr query refund 1")
    status = walkthrough.output("pmsr owner status --keystore alice")
    # The owner agent claims on its own; its claim may still be pending when the status is read.
    assert re.search(r"^1\s+published\s+(settled|submitted\s+claiming)", status, re.MULTILINE), status
    assert "Stopped Anvil" in walkthrough.output("pmsr chain down")
