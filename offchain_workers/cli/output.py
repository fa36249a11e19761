"""Printing command results: plain tables for people, JSON for scripts, progress on stderr.

Data goes to stdout and everything else (progress, notices, errors) to stderr, so
`pmsr ... --json | jq` always receives one JSON document. Wei amounts appear in JSON as decimal
strings, because JSON readers in other languages lose precision above 2^53.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

__all__ = [
    "Output",
    "Progress",
    "duration_option",
    "floor_duration_option",
    "format_table",
    "format_time",
    "to_jsonable",
]


def to_jsonable(value: Any) -> Any:
    """Convert a result into JSON-ready values: bytes to 0x-hex, enums to names, paths to strings."""
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    if isinstance(value, Path):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: to_jsonable(getattr(value, field.name)) for field in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(item) for item in value]
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return to_jsonable(value.tolist())
    return value


def format_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Format rows as left-aligned columns under a header line."""
    text_rows = [[str(cell) for cell in row] for row in rows]
    widths = [len(header) for header in headers]
    for row in text_rows:
        for index, cell in enumerate(row):
            widths[index] = max(widths[index], len(cell))
    lines = ["  ".join(header.ljust(width) for header, width in zip(headers, widths)).rstrip()]
    for row in text_rows:
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return "\n".join(lines)


def format_time(timestamp: int, now: int | None = None) -> str:
    """Format a Unix time in UTC, with the distance from `now` (chain time) when given."""
    if timestamp == 0:
        return "-"
    text = dt.datetime.fromtimestamp(timestamp, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    if now is None:
        return text
    delta = timestamp - now
    if delta > 0:
        return f"{text} (in {_short_duration(delta)})"
    if delta < 0:
        return f"{text} ({_short_duration(-delta)} ago)"
    return f"{text} (now)"


def duration_option(seconds: int) -> str:
    """Write seconds the way the duration options accept them, in the largest whole unit: `2m`, `90s`, `1h`."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def floor_duration_option(seconds: int) -> str:
    """Write seconds in the largest unit they reach, rounded down, as duration options accept them: `90s` -> `1m`."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _short_duration(seconds: int) -> str:
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{days}d"] if days else []
    if hours:
        parts.append(f"{hours}h")
    if minutes and not days:
        parts.append(f"{minutes}m")
    if not days and not hours:
        parts.append(f"{secs}s")
    return " ".join(parts)


class Output:
    """Destination of a command's result (text or JSON on stdout) and of its notices (stderr)."""

    def __init__(self, *, json_mode: bool, stdout: IO[str] | None = None, stderr: IO[str] | None = None) -> None:
        self.json_mode = json_mode
        self.stdout = stdout if stdout is not None else sys.stdout
        self.stderr = stderr if stderr is not None else sys.stderr

    def result(self, data: Any, text: str | Callable[[], str]) -> None:
        """Print a command's result: `data` as JSON with `--json`, else `text`."""
        if self.json_mode:
            print(json.dumps(to_jsonable(data), indent=2), file=self.stdout)
        else:
            print(text() if callable(text) else text, file=self.stdout)
        self.stdout.flush()

    def notice(self, message: str) -> None:
        """Print a line for the person at the terminal, on stderr so that stdout stays parseable."""
        print(message, file=self.stderr)
        self.stderr.flush()

    def progress(self, label: str, total: int | None = None) -> Progress:
        return Progress(label, total, stream=self.stderr)


class Progress:
    """Progress of long work on stderr.

    On a terminal one line is redrawn in place. Otherwise (a pipe, a log file, a test) a line with
    the counts is written when they change, at most every `interval` seconds, plus a final line.
    """

    def __init__(self, label: str, total: int | None = None, *, stream: IO[str] | None = None, interval: float = 5.0) -> None:
        self.label = label
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.interval = interval
        self.interactive = bool(getattr(self.stream, "isatty", lambda: False)())
        self.started = time.monotonic()
        self._state: tuple[int, str] | None = None
        self._written_state: tuple[int, str] | None = None
        self._written_at = float("-inf")
        self._drawn = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _line(self) -> str:
        assert self._state is not None
        done, detail = self._state
        counts = f"{done}/{self.total}" if self.total is not None else str(done)
        line = f"{self.label}: {counts}"
        if detail:
            line += f" ({detail})"
        return f"{line} [{time.monotonic() - self.started:.0f}s]"

    def update(self, done: int, detail: str = "") -> None:
        """Report `done` units of work so far, with an optional short status."""
        self._state = (done, detail)
        now = time.monotonic()
        if self.interactive:
            self.stream.write("\r\033[K" + self._line())
            self._drawn = True
        elif self._state != self._written_state and now - self._written_at >= self.interval:
            self.stream.write(self._line() + "\n")
            self._written_state = self._state
            self._written_at = now
        self.stream.flush()

    def close(self, message: str | None = None) -> None:
        """End the display with `message`, or with the last counts when they were not written yet."""
        if self._drawn:
            self.stream.write("\r\033[K")
            self._drawn = False
        if message is not None:
            self.stream.write(message + "\n")
        elif self._state is not None and (self.interactive or self._state != self._written_state):
            self.stream.write(self._line() + "\n")
            self._written_state = self._state
        self.stream.flush()
