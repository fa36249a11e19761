"""Named phases of a demo run: progress lines on a stream and the wall-clock time of each phase.

    clock = PhaseClock(sys.stderr)
    with clock.phase("deploying"):
        ...
    progress = clock.begin("submitting", total=2000)
    progress.update(1500)
    clock.end()
    clock.seconds   # {"deploying": 1.2, "submitting": 41.0}

Progress always goes to the stream given here (stderr in the demo commands), never to stdout, so
`--json` output stays one JSON document.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO

from ..cli.output import Progress

__all__ = ["PhaseClock", "PhaseProgress"]


class PhaseProgress:
    """The running phase: counts for phases with a total, and a short status."""

    def __init__(self, progress: Progress | None) -> None:
        self._progress = progress

    def update(self, done: int, detail: str = "") -> None:
        if self._progress is not None:
            self._progress.update(done, detail)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.close()


CpuSampler = Callable[[], dict[str, float]]


class PhaseClock:
    """Times consecutive phases and prints one line as each starts and ends.

    A phase entered twice accumulates its time. Beginning a phase ends the running one. When
    `cpu_sampler` is set (it returns the CPU seconds used so far by each process role), each phase
    also records the CPU time every role spent in it, in `cpu_seconds`.
    """

    def __init__(self, stream: IO[str], *, interval: float = 5.0) -> None:
        self.stream = stream
        self.interval = interval
        self.seconds: dict[str, float] = {}
        self.cpu_seconds: dict[str, dict[str, float]] = {}
        self.cpu_sampler: CpuSampler | None = None
        self.started = time.monotonic()
        self._current: tuple[str, float, PhaseProgress, dict[str, float]] | None = None

    def note(self, message: str) -> None:
        """Print one line of commentary inside or between phases."""
        self.stream.write(f"    {message}\n")
        self.stream.flush()

    def begin(self, name: str, *, total: int | None = None) -> PhaseProgress:
        """End the running phase, if any, and start timing phase `name`."""
        self.end()
        self.stream.write(f"==> {name}\n")
        self.stream.flush()
        progress = PhaseProgress(
            Progress(f"    {name}", total, stream=self.stream, interval=self.interval) if total is not None else None
        )
        self._current = (name, time.monotonic(), progress, self._sample_cpu())
        return progress

    def _sample_cpu(self) -> dict[str, float]:
        return self.cpu_sampler() if self.cpu_sampler is not None else {}

    def end(self) -> None:
        """End the running phase and print its time; does nothing when no phase runs."""
        if self._current is None:
            return
        name, began, progress, cpu_before = self._current
        self._current = None
        elapsed = time.monotonic() - began
        self.seconds[name] = self.seconds.get(name, 0.0) + elapsed
        cpu_after = self._sample_cpu()
        phase_cpu = self.cpu_seconds.setdefault(name, {})
        for role, seconds in cpu_after.items():
            # A process started during the phase counts from zero.
            phase_cpu[role] = phase_cpu.get(role, 0.0) + max(0.0, seconds - cpu_before.get(role, 0.0))
        progress.close()
        self.stream.write(f"    {name}: {elapsed:.1f} s\n")
        self.stream.flush()

    @property
    def running(self) -> str | None:
        return self._current[0] if self._current is not None else None

    @contextmanager
    def phase(self, name: str, *, total: int | None = None) -> Iterator[PhaseProgress]:
        """Time the `with` block as phase `name`; with `total`, the block reports counts out of it."""
        progress = self.begin(name, total=total)
        try:
            yield progress
        finally:
            self.end()

    @property
    def total_seconds(self) -> float:
        return time.monotonic() - self.started
