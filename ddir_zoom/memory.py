"""Memory policy: give freed memory back to the system after each refined view.

glibc's malloc serves a large block from its heap unless the block is over its mmap threshold,
and it raises that threshold (up to 32 MiB) each time a block that came from mmap is freed.
After the first encoded feature tile is freed, every later activation, decoding chunk and
cached tile comes from the heap, interleaved, and freed temporaries leave holes between cached
tensors that the process keeps. Measured (benchmarks/viewport.py, its memory child and
`--compare-allocator`): a 24-megapixel photo viewed at fit, x1.5 and x4 with the paper-size
DDIR and its first pass, the student and the paper-size LIIF; the figures are in the README's
Speed section.

`release` trims the heap (glibc's malloc_trim) once a view is fully refined: cheap, and the
next view starts from what the caches hold. Fixing the mmap threshold instead (1 MiB or 16
MiB, commit 4eb0b6d) was measured and rejected: every large temporary then costs fresh pages,
and a warm x2.5 view with the student took 4.3-4.6 s instead of 3.0 s, a drag frame 11-16 ms
instead of 7.
`DDIR_ZOOM_MALLOC_TRIM=0` switches trimming off, for a comparison. Nothing is done where the
C library is not glibc (macOS, Windows, musl).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

_libc = None


def _glibc():
    global _libc
    if _libc is None:
        _libc = False
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                if hasattr(libc, "malloc_trim"):
                    _libc = libc
            except OSError:
                pass
    return _libc or None


def trimming() -> bool:
    """Whether `release` trims the heap here (glibc, and not switched off)."""
    return _glibc() is not None and os.environ.get("DDIR_ZOOM_MALLOC_TRIM", "1") != "0"


def release() -> None:
    """Give the heap's free memory back to the system (glibc's malloc_trim)."""
    if trimming():
        _glibc().malloc_trim(0)
