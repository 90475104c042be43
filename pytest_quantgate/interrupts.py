"""A Ctrl-C that Python drops is raised again.

When SIGINT arrives while a generator is being finalized (the reading generators of a streamed answer,
left at ``data: [DONE]`` and closed when they are freed), the KeyboardInterrupt raised there is printed as
"Exception ignored in ..." and lost, and the run goes on. :func:`watch` wraps the SIGINT handler so that it
also notes the interrupt; :func:`raise_if_dropped` — called by the client after every request — raises it
again in ordinary code. Reading each stream to its end would avoid the finalizer too, but llama-server ends
a chunked body late (about 1.3 ms a request, measured), which every level would pay.
"""

from __future__ import annotations

import signal
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import FrameType

_noted = False


def watch() -> Callable[[], None] | None:
    """Wrap the current SIGINT handler (main thread only); returns the function that restores it."""
    if threading.current_thread() is not threading.main_thread():
        return None
    previous = signal.getsignal(signal.SIGINT)
    if not callable(previous):  # SIG_IGN or SIG_DFL: Ctrl-C is not Python's to raise
        return None

    def handler(signum: int, frame: FrameType | None) -> Any:
        global _noted
        _noted = True
        return previous(signum, frame)  # raises KeyboardInterrupt (the default handler), or whatever it does

    signal.signal(signal.SIGINT, handler)

    def restore() -> None:
        if signal.getsignal(signal.SIGINT) is handler:
            signal.signal(signal.SIGINT, previous)

    return restore


def raise_if_dropped() -> None:
    """Raise the KeyboardInterrupt of a Ctrl-C noted since the last call (one a finalizer dropped)."""
    global _noted
    if _noted:
        _noted = False
        raise KeyboardInterrupt


def clear() -> None:
    """Forget a noted Ctrl-C (one that was raised, and handled, as usual)."""
    global _noted
    _noted = False
