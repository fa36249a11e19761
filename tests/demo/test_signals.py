"""A demo stopped with SIGTERM unwinds like Ctrl-C: it stops its processes and keeps its work directory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in command:
            found.append(int(entry.name))
    return found


def test_sigterm_stops_the_demo_and_its_processes(tmp_path: Path) -> None:
    work_dir = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "offchain_workers.cli.main", "demo", "wages", "--owners", "6", "--workdir", str(work_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert process.stderr is not None
    lines = []
    deadline = time.monotonic() + 120
    # Wait until the services run, so that there are child processes to stop.
    for line in process.stderr:
        lines.append(line)
        if "==> proposing" in line or time.monotonic() > deadline:
            break
    process.send_signal(signal.SIGTERM)
    _, rest = process.communicate(timeout=120)
    stderr = "".join(lines) + rest

    assert process.returncode == 143, stderr[-2000:]
    assert "error: terminated" in stderr
    assert f"kept in {work_dir}" in stderr
    assert work_dir.is_dir()
    time.sleep(1)
    assert _processes_mentioning(str(work_dir)) == [], "processes of the stopped demo are still running"
    assert os.path.exists(work_dir / "market")
