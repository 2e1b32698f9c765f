"""A line on stderr while Numba compiles nettrain's kernels: on a first run after install (or
after an upgrade) the first batch waits seconds for them, which would otherwise look like a hang.

Numba compiles a kernel on its first call and caches it on disk; kernels loaded from the cache
are not compiled, so later runs print nothing. ``notice(stream)`` watches Numba's compile
events: the first compilation of a nettrain kernel writes MESSAGE, and ``settled()`` (called
after the first training batch) or leaving the context writes the seconds the compilations took,
once. With ``stream`` None nothing is watched or written (``--quiet``, the Python API).
"""

from __future__ import annotations

import contextlib
import sys
import time

MESSAGE = "compiling kernels (first run after install; cached for later runs)..."

_active = None  # the _Watch of the current notice(), if any


class _Watch:
    """Numba compile-event listener: times the top-level compilations of nettrain kernels."""

    def __init__(self, stream):
        self.stream = stream
        self.depth = 0  # nesting: a kernel's compilation compiles what it calls
        self.started = 0.0
        self.seconds = 0.0
        self.announced = self.reported = False

    def notify(self, ev) -> None:
        """A Numba compile event (its start or its end)."""
        if ev.is_start:
            if self.depth == 0:
                self.started = time.perf_counter()
                func = getattr(ev.data.get("dispatcher"), "py_func", None)
                if not self.announced and getattr(func, "__module__", "").startswith("nettrain"):
                    self.announced = True
                    self.write(MESSAGE)
            self.depth += 1
        elif ev.is_end:
            self.depth -= 1
            if self.depth == 0:
                self.seconds += time.perf_counter() - self.started

    def write(self, text: str) -> None:
        tqdm = sys.modules.get("tqdm")  # a progress bar on the stream is cleared and redrawn
        if tqdm is not None:
            tqdm.tqdm.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def report(self) -> None:
        if self.announced and not self.reported and self.depth == 0:
            self.reported = True
            self.write(f"kernels compiled in {self.seconds:.1f} s")


@contextlib.contextmanager
def notice(stream=sys.stderr):
    """Within: say on ``stream`` when nettrain's kernels are compiled, and how long it took."""
    global _active
    if stream is None:
        yield
        return
    from numba.core import event

    class Listener(event.Listener):
        def on_start(self, ev):
            watch.notify(ev)

        def on_end(self, ev):
            watch.notify(ev)

    watch, outer, listener = _Watch(stream), _active, Listener()
    event.register("numba:compile", listener)
    _active = watch
    try:
        yield
    finally:
        event.unregister("numba:compile", listener)
        _active = outer
        watch.report()


def settled() -> None:
    """The kernels of a training step are compiled (the first batch is done): say how long it
    took, if they were compiled in this run."""
    if _active is not None:
        _active.report()
