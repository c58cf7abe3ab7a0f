"""What every child process of a simulation shares: it is started deaf to Ctrl-C, ends
with its parent, and sends back errors that pickle (``omega.sim._beside``'s second
process, ``omega.sim._server_process``'s servers)."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import threading

from omega.errors import OmegaError

__all__ = ["deaf_to_ctrl_c", "exit_with_parent", "picklable", "start_deaf_to_ctrl_c"]


def start_deaf_to_ctrl_c(child: multiprocessing.process.BaseProcess) -> None:
    """Start ``child`` with SIGINT blocked (the mask survives the spawn's exec): Ctrl-C
    reaches the whole process group, and this process, interrupted, stops the child
    itself — without the child's own traceback, or the child dying before it has read
    its parts. The child calls :func:`deaf_to_ctrl_c` first thing. Blocked, not ignored,
    here: a Ctrl-C that lands while the child starts is this process's once the mask is
    back (an ignored one was lost, and the run went on to its end)."""
    if threading.current_thread() is not threading.main_thread():
        child.start()  # signals are this process's main thread's alone
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        child.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def deaf_to_ctrl_c() -> None:
    """In a child started by :func:`start_deaf_to_ctrl_c`: ignore SIGINT from now on (one
    pending since the start is dropped), its parent stops it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def exit_with_parent() -> None:
    """End this process when its parent ends (killed, it stops nothing): else it would
    work on alone, then wait forever to send a result no one reads. Run it in a daemon
    thread of the child."""
    parent = multiprocessing.parent_process()
    if parent is not None:
        parent.join()
        os._exit(1)


def picklable(exc: BaseException, who: str) -> BaseException:
    """``exc``, or an :class:`OmegaError` with its words if it would not pickle."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return OmegaError(f"{who} failed: {type(exc).__name__}: {exc}")
    return exc
