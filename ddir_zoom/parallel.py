"""Independent pieces of CPU work, one per core, each on one torch thread.

Decoding is many small operations on a chunk of queries (a gather, a few 64- to 256-wide
products, element-wise steps). Spread over the cores operation by operation, as torch does, the
cores meet after every operation, and at these sizes the meeting costs a large part of the
work. Decoding two chunks at once, each on its own core with one thread, needs no meeting: a
tile decoded 1.3-1.5x faster on the 2-core CPU (benchmarks/pieces.py; benchmarks/viewport.py
shows what it gives a view). A busy CPU then slows each piece down, but no thread waits on
another.

`run_pieces` does this for work that splits into pieces that write disjoint outputs. It falls
back to running the pieces in order, on the caller's threads, on a GPU, when the caller has one
thread, or for a single piece (callers split work into at least `workers` pieces).

torch's thread count is per thread (OpenMP's setting) but a new thread takes its first value
from the last one any thread set, so the pool's threads set theirs to one and the creating
thread then sets its own count back, which restores that default for threads started later.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import torch

_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_pool_lock = threading.Lock()
_worker = threading.local()


def _initialise() -> None:
    # torch sets a thread's count from the shared default on the thread's first use of it,
    # so use it first: the count set here then stays.
    torch.get_num_threads()
    torch.set_num_threads(1)
    _worker.active = True


def _executor(size: int) -> ThreadPoolExecutor:
    """The shared pool, grown to `size` threads (never shrunk: idle threads cost nothing)."""
    global _pool, _pool_size
    with _pool_lock:
        if _pool is None or _pool_size < size:
            threads = torch.get_num_threads()
            old = _pool
            _pool = ThreadPoolExecutor(size, thread_name_prefix="ddir-piece",
                                       initializer=_initialise)
            _pool_size = size
            # Start every thread now, then restore the default count for threads to come.
            barrier = threading.Barrier(size + 1)
            for _ in range(size):
                _pool.submit(barrier.wait)
            barrier.wait()
            torch.set_num_threads(threads)
            if old is not None:
                old.shutdown(wait=False)
        return _pool


def enabled() -> bool:
    """Whether CPU work is split into pieces; `DDIR_ZOOM_PIECES=0` spreads each operation over
    the threads instead, as torch does (for comparison)."""
    return os.environ.get("DDIR_ZOOM_PIECES", "1") != "0"


def _cores() -> int:
    """The calling thread's cores: its torch thread count, or what it was before `one_thread`."""
    return getattr(_worker, "cores", None) or torch.get_num_threads()


def workers(device: torch.device) -> int:
    """How many pieces run at once for work on `device`: the caller's thread count on a CPU
    (1 inside a piece: pieces do not split further), else 1."""
    if device.type != "cpu" or getattr(_worker, "active", False) or not enabled():
        return 1
    return _cores()


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run the calling thread's own torch operations on one thread: small ones (a low-pass of
    a few thousand pixels, a 66 x 66 projection) take longer spread over the cores, which meet
    after each. `run_pieces` inside still uses every core the caller had."""
    threads = torch.get_num_threads()
    if (getattr(_worker, "active", False) or getattr(_worker, "cores", None) or threads == 1
            or not enabled()):
        yield
        return
    _worker.cores = threads
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        _worker.cores = None


def run_pieces(work: Callable[[int], None], count: int, device: torch.device) -> None:
    """Run work(0) ... work(count - 1), each on one torch thread, up to `workers(device)` at
    once, in inference mode; returns when all are done and raises the first error. A single
    piece runs on the caller's thread with all of its cores (large operations, such as
    encoding one feature tile, gain from them)."""
    parallel = min(workers(device), count)
    if parallel <= 1:
        threads = torch.get_num_threads()
        cores = _cores() if device.type == "cpu" else threads
        with torch.inference_mode():
            if cores != threads:
                torch.set_num_threads(cores)
            try:
                for index in range(count):
                    work(index)
            finally:
                if cores != threads:
                    torch.set_num_threads(threads)
        return

    def piece(index: int) -> None:
        with torch.inference_mode():
            work(index)

    futures = [_executor(parallel).submit(piece, index) for index in range(count)]
    for future in futures:
        future.result()


def even_pieces(total: int, most: int, parts: int) -> Sequence[tuple[int, int]]:
    """[start, stop) ranges over `total` items: at least `parts` of them where there are
    that many items, none longer than `most`, and of nearly equal length."""
    count = max(min(parts, total), -(-total // most), 1)
    size = max(1, -(-total // count))
    return [(start, min(total, start + size)) for start in range(0, total, size)]
