"""Memory policy: give freed tensor memory back to the system.

glibc's malloc serves a large block from its heap unless the block is over its mmap threshold,
and it raises that threshold (up to 32 MiB) each time a block that came from mmap is freed.
After the first encoded feature tile (about 18 MiB of activations for the paper-size DDIR) is
freed, every later activation, decoding chunk and cached tile comes from the heap, interleaved;
freed temporaries leave holes between cached tensors that the process keeps. Measured on a
24-megapixel photo (benchmarks/viewport.py's memory child, one x1.5 view with the paper-size
DDIR and its first pass): 1994 MiB peak, 1894 MiB held after the view, 1415 MiB after
`malloc_trim`; with the threshold fixed at 1 MiB, 1533 MiB peak and 1423 MiB held.

`set_allocator_policy` fixes the threshold (once, at import of `ddir_zoom`, see its
`__init__`); `release` hands back what the heap holds free, after a view is refined.
`DDIR_ZOOM_MMAP_THRESHOLD` (bytes) sets another threshold; 0 leaves glibc alone (no threshold,
no trimming), for a comparison. Both do nothing where the C library is not glibc (macOS,
Windows, musl).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

MMAP_THRESHOLD = 1 << 20
"""Blocks from this size up are mapped on their own and unmapped when freed."""
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number

_libc = None
_enabled = False


def _glibc():
    global _libc
    if _libc is None:
        _libc = False
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt"):
                    _libc = libc
            except OSError:
                pass
    return _libc or None


def set_allocator_policy() -> int:
    """Fix glibc's mmap threshold (`MMAP_THRESHOLD`, or `DDIR_ZOOM_MMAP_THRESHOLD` bytes; 0:
    leave the default). Returns the threshold set, 0 if none was."""
    global _enabled
    libc = _glibc()
    try:
        threshold = int(os.environ.get("DDIR_ZOOM_MMAP_THRESHOLD", MMAP_THRESHOLD))
    except ValueError:
        threshold = MMAP_THRESHOLD
    _enabled = libc is not None and threshold > 0
    if not _enabled:
        return 0
    return threshold if libc.mallopt(_M_MMAP_THRESHOLD, threshold) == 1 else 0


def release() -> None:
    """Give the heap's free memory back to the system (glibc's malloc_trim)."""
    libc = _glibc()
    if libc is not None and _enabled:
        libc.malloc_trim(0)
