"""Child-process helpers: make a child started by this process stop when this process dies."""

from __future__ import annotations

import ctypes
import signal
import sys
import threading
from collections.abc import Callable

__all__ = ["exit_with_parent_hook"]

_PR_SET_PDEATHSIG = 1


def exit_with_parent_hook() -> Callable[[], None] | None:
    """Return a `preexec_fn` that has Linux send the child SIGTERM when its parent dies, or None.

    Linux ties the parent-death signal to the thread that forked the child, so the hook is returned
    only on the main thread, whose exit is the process's exit. Elsewhere, and on other systems, it
    returns None and a child outlives a parent that is killed with SIGKILL.
    """
    if not sys.platform.startswith("linux"):
        return None
    if threading.current_thread() is not threading.main_thread():
        return None
    # prctl is looked up here, in the parent: between fork and exec the child may only make plain
    # calls, because a lock another thread held at fork time (the dynamic loader's, say) stays held.
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    death_signal = int(signal.SIGTERM)

    def set_parent_death_signal() -> None:
        prctl(_PR_SET_PDEATHSIG, death_signal, 0, 0, 0)

    return set_parent_death_signal
