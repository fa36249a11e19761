"""Child-process helpers: make a child started by this process stop when this process dies."""

from __future__ import annotations

import contextlib
import ctypes
import signal
import sys
import threading
from collections.abc import Callable, Iterator

__all__ = ["exit_with_parent_hook", "stop_signals_held", "defer_stop_signal"]

# Signals that stop a command; they are held while the main thread forks a child.
_STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})


class _Holding:
    """How many `stop_signals_held` blocks are open on the main thread, and the signals they deferred."""

    depth = 0
    pending: list[int] = []

_PR_SET_PDEATHSIG = 1


def exit_with_parent_hook() -> Callable[[], None] | None:
    """Return a `preexec_fn` that has Linux send the child SIGTERM when its parent dies, or None.

    Linux ties the parent-death signal to the thread that forked the child, so the hook is returned
    only on the main thread, whose exit is the process's exit. Elsewhere, and on other systems, it
    returns None and a child outlives a parent that is killed with SIGKILL. The hook also unblocks
    the signals that `stop_signals_held` holds, so the child can be stopped.
    """
    if not _forks_from_main_thread():
        return None
    # prctl is looked up here, in the parent: between fork and exec the child may only make plain
    # calls, because a lock another thread held at fork time (the dynamic loader's, say) stays held.
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    death_signal = int(signal.SIGTERM)

    def set_parent_death_signal() -> None:
        prctl(_PR_SET_PDEATHSIG, death_signal, 0, 0, 0)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)

    return set_parent_death_signal


@contextlib.contextmanager
def stop_signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM while the main thread starts a child, and deliver them afterwards.

    A signal that arrives while Python forks runs its handler inside an at-fork hook, which drops the
    KeyboardInterrupt the handler raises, so the command would go on as if never stopped. The block
    masks the signals on the main thread, and a handler that calls `defer_stop_signal` notes a
    signal that another thread received. The block raises the noted signal again when it ends,
    after the caller has recorded the child. Use it with `exit_with_parent_hook`, whose hook
    unblocks the signals in the child.
    """
    if not _forks_from_main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    _Holding.depth += 1
    try:
        yield
    finally:
        _Holding.depth -= 1
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        if _Holding.depth == 0 and _Holding.pending:
            number = _Holding.pending[0]
            _Holding.pending.clear()
            signal.raise_signal(number)


def defer_stop_signal(number: int) -> bool:
    """Note signal `number` and return True while a child is being started; otherwise return False.

    A SIGINT or SIGTERM handler calls this first and returns at once when it gets True:
    `stop_signals_held` raises the signal again when the child is started.
    """
    if _Holding.depth == 0:
        return False
    _Holding.pending.append(number)
    return True


def _forks_from_main_thread() -> bool:
    return sys.platform.startswith("linux") and threading.current_thread() is threading.main_thread()
