"""Service processes of a local market: start, stop, SIGKILL, restart, one log file each.

Every process runs `python -m MODULE --config FILE` with the interpreter of the calling process, in
its own session (so a terminal's Ctrl-C reaches only the runner), with stdout and stderr appended to
its log file. Processes still running at interpreter exit are killed by an `atexit` hook, by their
own process id.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from pmsr_chain._process import exit_with_parent_hook, stop_signals_held
from pmsr_chain.errors import PmsrError

__all__ = ["ProcessError", "ServiceProcess", "read_peak_rss_mb", "read_cpu_seconds"]

logger = logging.getLogger(__name__)

# Seconds a process gets to exit after SIGTERM before it is killed.
DEFAULT_STOP_TIMEOUT = 15.0


class ProcessError(PmsrError, RuntimeError):
    """A service process could not be started, or exited when it should be running."""


def read_peak_rss_mb(pid: int) -> float | None:
    """Return the peak resident set size (`VmHWM` in /proc/PID/status) in MiB, or None if unreadable.

    Linux only. The value is the high-water mark over the process's life so far.
    """
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    kilobytes = int(line.split()[1])
                    return kilobytes / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def read_cpu_seconds(pid: int) -> float | None:
    """Return the user plus system CPU time of a process in seconds (from /proc/PID/stat), or None.

    Linux only.
    """
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            # The command name in parentheses may contain spaces; the numeric fields follow it.
            fields = stat.read().rsplit(")", 1)[1].split()
        # utime and stime are fields 14 and 15 of the file: indexes 11 and 12 after the command name.
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


_running: dict[int, ServiceProcess] = {}
_running_lock = threading.Lock()


@atexit.register
def _kill_running_processes() -> None:
    with _running_lock:
        processes = list(_running.values())
    for process in processes:
        process.kill()


class ServiceProcess:
    """One restartable service process: `python -m module --config config_path [extra_args]`."""

    def __init__(
        self,
        name: str,
        module: str,
        config_path: Path,
        log_path: Path,
        *,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        ready_marker: str | None = None,
    ) -> None:
        self.name = name
        self.module = module
        self.config_path = Path(config_path)
        self.log_path = Path(log_path)
        self.extra_args = tuple(extra_args)
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.ready_marker = ready_marker
        self.starts = 0
        self._log_offset = 0
        self._terminate_sent = False
        self.peak_rss_mb: float | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def __repr__(self) -> str:
        return f"ServiceProcess({self.name}, pid={self.pid}, running={self.running})"

    @property
    def command(self) -> list[str]:
        return [sys.executable, "-m", self.module, "--config", str(self.config_path), *self.extra_args]

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def returncode(self) -> int | None:
        return self._process.poll() if self._process is not None else None

    def start(self) -> ServiceProcess:
        """Start the process unless it is running; its output is appended to `log_path`."""
        if self.running:
            return self
        self._close_log()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")
        self._log_offset = self._log.tell()
        self._log.write(f"--- start {self.starts + 1} of {self.name}: {' '.join(self.command)}\n".encode())
        self._log.flush()
        environment = {**os.environ, **(self.env or {})}
        # Unbuffered output keeps the log complete up to the moment of a SIGKILL.
        environment["PYTHONUNBUFFERED"] = "1"
        # The child is recorded before a held SIGINT or SIGTERM arrives, so the unwinding stops it.
        with stop_signals_held():
            self._process = subprocess.Popen(
                self.command,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.cwd,
                env=environment,
                start_new_session=True,
                preexec_fn=exit_with_parent_hook(),
            )
            self.starts += 1
            self._terminate_sent = False
            with _running_lock:
                _running[self._process.pid] = self
        logger.info("started %s (pid %d), log %s", self.name, self._process.pid, self.log_path)
        return self

    def sample_peak_rss(self) -> float | None:
        """Read the peak RSS of the running process and remember the largest value seen."""
        if self._process is None or not self.running:
            return self.peak_rss_mb
        value = read_peak_rss_mb(self._process.pid)
        if value is not None and (self.peak_rss_mb is None or value > self.peak_rss_mb):
            self.peak_rss_mb = value
        return self.peak_rss_mb

    def terminate(self) -> None:
        """Send SIGTERM without waiting; `stop` then waits for the exit."""
        if self._process is not None and self._process.poll() is None:
            self.sample_peak_rss()
            logger.info("stopping %s (pid %d) with SIGTERM", self.name, self._process.pid)
            self._process.send_signal(signal.SIGTERM)
            self._terminate_sent = True

    def cpu_seconds(self) -> float | None:
        """Return the CPU time the running process has used so far, in seconds, or None if it is not running."""
        if self._process is None or not self.running:
            return None
        return read_cpu_seconds(self._process.pid)

    def stop(self, timeout: float = DEFAULT_STOP_TIMEOUT) -> int | None:
        """Send SIGTERM (unless `terminate` did) and wait up to `timeout` seconds, then SIGKILL.

        Return the exit status.
        """
        if self._process is None:
            return None
        if self._process.poll() is None:
            if not self._terminate_sent:
                self.terminate()
            try:
                self._process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                logger.warning("%s (pid %d) ignored SIGTERM for %.0f s; killing it", self.name, self._process.pid, timeout)
                self._process.kill()
                self._process.wait()
        return self._finish()

    def kill(self) -> int | None:
        """Send SIGKILL, as a crash would, and wait for the process to end. Return the exit status."""
        if self._process is None:
            return None
        if self._process.poll() is None:
            self.sample_peak_rss()
            logger.info("killing %s (pid %d) with SIGKILL", self.name, self._process.pid)
            self._process.kill()
            self._process.wait()
        return self._finish()

    def restart(self) -> ServiceProcess:
        """Stop the process if it runs, then start it again with the same configuration."""
        self.stop()
        return self.start()

    def wait_ready(self, timeout: float) -> bool:
        """Wait until the log of the current run contains `ready_marker`; return whether it appeared.

        The marker is a line the service logs once it serves (for example "started"). Without a
        marker this returns True at once. Raises `ProcessError` if the process exits first.
        """
        if self.ready_marker is None:
            return True
        marker = self.ready_marker.encode()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with open(self.log_path, "rb") as log:
                    log.seek(self._log_offset)
                    if marker in log.read():
                        return True
            except OSError:
                pass
            if not self.running:
                raise ProcessError(
                    f"{self.name} exited with status {self.returncode} before it was ready; last lines of "
                    f"{self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(0.05)
        logger.warning("%s logged no %r within %.0f s; carrying on", self.name, self.ready_marker, timeout)
        return False

    def log_tail(self, lines: int = 20) -> str:
        """Return the last `lines` lines of the log file."""
        try:
            with open(self.log_path, "rb") as log:
                log.seek(0, os.SEEK_END)
                log.seek(max(0, log.tell() - 16_384))
                text = log.read().decode("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _finish(self) -> int | None:
        assert self._process is not None
        status = self._process.returncode
        with _running_lock:
            _running.pop(self._process.pid, None)
        self._close_log()
        logger.info("%s (pid %d) exited with status %s", self.name, self._process.pid, status)
        return status

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
