"""Turn SIGTERM, SIGINT and SIGHUP into an exception, so ``finally:`` teardown runs.

By default SIGTERM and SIGHUP end a Python process on the spot: no ``finally`` block runs,
and the rehearsal hosts it booted (whose nspawn/qemu run in sessions of their own) stay up.
Inside :func:`teardown_on_signal` the first of these signals raises :class:`Interrupted`
(a ``KeyboardInterrupt``, like SIGINT, so ``except Exception`` does not swallow it and pytest
stops the session and runs its fixtures' teardown) in the main thread::

    with teardown_on_signal():
        try:
            info = up("bench-1")
            ...
        finally:
            down("bench-1")  # runs on SIGTERM/SIGINT/SIGHUP too

Later signals, while that exception unwinds and the hosts are torn down, are ignored (with a
note on stderr): a second Ctrl-C does not cut a teardown short. A signal that arrives while
rehearsal code is inside :func:`holding_signals` (``down`` and the few steps of ``up`` between
starting a process and recording its pid) waits until that block is done, so no host is left
half torn down or with an unrecorded process. SIGKILL cannot be caught: for that,
``reap_stale()`` removes the hosts of owners that are gone.

The handlers only work in the main thread (Python delivers signals there); the previous
handlers are restored when the block exits. Blocks nest.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass

SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class Interrupted(KeyboardInterrupt):
    """Raised by :func:`teardown_on_signal` for the first signal received.

    ``signum`` is the signal, ``exit_code`` the shell's status for it (128 + signum): a
    command-line main can ``sys.exit(exc.exit_code)``.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


@dataclass
class _Block:
    """State of one active :func:`teardown_on_signal` block."""

    received: int | None = None  # the first signal delivered while this block was innermost
    raised: bool = False  # Interrupted was raised for it


_blocks: list[_Block] = []  # active blocks, innermost last
_holding = 0  # depth of holding_signals() in the main thread


def _note(text: str) -> None:
    with contextlib.suppress(Exception):
        print(f"lbstack: {text}", file=sys.stderr, flush=True)


def _handler(signum: int, _frame) -> None:
    if not _blocks:
        return
    block = _blocks[-1]
    name = signal.Signals(signum).name
    if block.received is not None:
        _note(f"{name} ignored: already stopping, tearing down rehearsal hosts (SIGKILL aborts; "
              "`lbstack rehearsal reap` then removes what is left)")
        return
    block.received = signum
    if _holding:
        _note(f"{name}: stopping once the rehearsal teardown in progress is done")
        return
    block.raised = True
    raise Interrupted(signum)


@contextlib.contextmanager
def teardown_on_signal(signals: tuple[int, ...] = SIGNALS) -> Iterator[None]:
    """Within the block, the first of ``signals`` raises :class:`Interrupted`; later ones are ignored.

    Restores the previous handlers on exit. Must be entered from the main thread.
    """
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("teardown_on_signal() needs the main thread (Python runs signal handlers there)")
    previous = {signum: signal.getsignal(signum) for signum in signals}
    block = _Block()
    _blocks.append(block)
    try:
        for signum in signals:
            signal.signal(signum, _handler)
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        _blocks.remove(block)


@contextlib.contextmanager
def holding_signals(reraise: bool = True) -> Iterator[None]:
    """Hold the signals of an enclosing :func:`teardown_on_signal` until the block is done.

    A signal received inside is raised as :class:`Interrupted` when the outermost holding block
    exits normally (not if ``reraise`` is False, nor while another exception propagates).
    A no-op outside the main thread or outside any ``teardown_on_signal`` block.
    """
    global _holding
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _holding += 1
    try:
        yield
    finally:
        _holding -= 1
    if _holding or not _blocks:
        return
    block = _blocks[-1]
    if block.received is not None and not block.raised and reraise:
        block.raised = True
        raise Interrupted(block.received)


def stopping() -> bool:
    """True once the innermost :func:`teardown_on_signal` block received a signal."""
    return bool(_blocks) and _blocks[-1].received is not None
