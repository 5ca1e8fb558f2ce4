"""Peak resident memory (RSS) of a block of code, for the benchmark scripts.

On Linux the kernel's high-water mark (``VmHWM``) is reset through
``/proc/self/clear_refs`` (value 5, see proc(5)) and read back afterwards, so
the peak is exact and costs nothing while the block runs. Elsewhere a
background thread samples the RSS with psutil every few milliseconds.
"""

from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager
from typing import Iterator

GIB = 1024**3


def current_rss() -> int:
    """Resident set size of this process in bytes."""
    import psutil

    return psutil.Process().memory_info().rss


def _read_hwm() -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _return_freed_heap() -> None:
    """Hand memory that glibc keeps after ``free`` back to the kernel, so that a block which reuses it
    is not measured as adding nothing (``malloc_trim(3)``; a no-op elsewhere)."""
    import ctypes
    import ctypes.util

    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
    except OSError:
        return False
    return _read_hwm() is not None


class PeakRss:
    """``start``: RSS when the block began; ``peak``: highest RSS inside it (bytes)."""

    start: int = 0
    peak: int = 0

    @property
    def added(self) -> int:
        """How far the block raised the RSS above its starting point."""
        return self.peak - self.start


@contextmanager
def peak_rss(interval_s: float = 0.005) -> Iterator[PeakRss]:
    """Measure the peak RSS of the ``with`` block: ``with peak_rss() as m: ...; m.peak, m.added``."""
    _return_freed_heap()
    result = PeakRss()
    result.start = result.peak = current_rss()
    if _reset_hwm():
        yield result
        result.peak = max(result.start, _read_hwm() or 0)
        return
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            result.peak = max(result.peak, current_rss())
            time.sleep(interval_s)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield result
    finally:
        stop.set()
        sampler.join()
        result.peak = max(result.peak, current_rss())


__all__ = ["GIB", "PeakRss", "current_rss", "peak_rss"]
