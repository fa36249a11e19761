"""Stop signals that arrive while a child is being started are held, then delivered."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from pmsr_chain._process import defer_stop_signal, exit_with_parent_hook, stop_signals_held


def _blocked_signals(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigBlk:"):
            return int(line.split()[1], 16)
    raise AssertionError(f"no SigBlk line for process {pid}")


def test_sigterm_is_held_until_the_block_ends() -> None:
    received: list[int] = []

    def handler(number: int, frame: object) -> None:
        # As the command line's handler does: a signal during the block waits for its end.
        if not defer_stop_signal(number):
            received.append(number)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        with stop_signals_held():
            os.kill(os.getpid(), signal.SIGTERM)
            received_inside = list(received)
        delivered = list(received)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert received_inside == []
    assert delivered == [signal.SIGTERM]


def test_child_started_while_held_can_be_stopped() -> None:
    with stop_signals_held():
        child = subprocess.Popen(["sleep", "30"], preexec_fn=exit_with_parent_hook())
    try:
        term_bit = 1 << (int(signal.SIGTERM) - 1)
        int_bit = 1 << (int(signal.SIGINT) - 1)
        assert _blocked_signals(child.pid) & (term_bit | int_bit) == 0
        child.terminate()
        assert child.wait(timeout=10) == -signal.SIGTERM
    finally:
        child.kill()
        child.wait()
