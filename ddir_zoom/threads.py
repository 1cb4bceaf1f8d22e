"""CPU thread policy: behave well on a machine that other programs are using.

Our rendering is many small torch operations (chunked decoding, tiles); decoding and encoding
run in pieces side by side on one thread each (`ddir_zoom.parallel`), but encoding a single
feature tile and the viewer's other work still spread over the threads. With OpenMP's default
active waiting, each of the pool's threads spins between operations; on a busy CPU the spinning
threads compete with the programs that hold the cores and with each other, and a render that takes
1 s alone took 27 s beside a competing load (measured in the speed issue). Passive waiting puts
idle threads to sleep instead.

Passive waiting alone, though, puts a thread to sleep in every gap between two operations, and
waking it costs more than many of our operations: a warm view with the student took 3.1-3.5 s
instead of 2.1-2.4 s on the idle 2-core machine. So a waiting thread first spins briefly
(SPIN_COUNT, tens of microseconds), which covers most gaps within a tile's work. Longer spins
(1 ms, or OpenMP's active waiting) gained little more idle and, beside a competing load, cost
far more: a spinning thread holds a core that the thread it waits for needs. Measured with
benchmarks/wait_policy.py; the figures are in the README's Speed section.

These variables are read once, when torch's OpenMP runtime starts, so `ddir_zoom/__init__`
sets them (unless the user already did) before anything imports torch. The thread count is chosen
when the program starts: the cores this process may run on, less those busy with other work by
the 1-minute load average, at least one; `--threads` (command line) or the Threads setting
override it.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading

WAIT_POLICY_DEFAULT = "PASSIVE"
SPIN_COUNT = "3000"
"""Spins of GNU OpenMP (torch's Linux builds) before a waiting thread sleeps; libgomp counts
about 100 000 per millisecond. Other OpenMP runtimes (macOS, Windows) ignore it and wait
passively."""


COMPUTE = threading.RLock()
"""Held around each tile of model work (`Engine.render_region`, feature prefetching). torch's
thread pool is shared by the whole process, so two Python threads running torch at once (the
viewer's render worker and an export) would each fan out over every core: twice the threads the
machine has. Taking turns tile by tile keeps one pool busy and lets both progress."""


def set_wait_policy() -> None:
    """Passive OpenMP waiting after a short spin, unless the environment says otherwise;
    before torch loads. A user's OMP_WAIT_POLICY is kept as it is, spin count included."""
    if "OMP_WAIT_POLICY" in os.environ:
        return
    os.environ["OMP_WAIT_POLICY"] = WAIT_POLICY_DEFAULT
    os.environ.setdefault("GOMP_SPINCOUNT", SPIN_COUNT)


def usable_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def free_cores(load: float | None = None) -> int:
    """Cores not busy with other work: usable cores minus the 1-minute load average (rounded
    down, so a core that is half busy still counts as free), at least one."""
    cores = usable_cores()
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):  # Windows
            load = 0.0
    return max(1, min(cores, cores - math.floor(load)))


def configure(threads: int | None = None) -> int:
    """Set torch's intra-op threads to `threads` (or `free_cores()` when None or 0), and its
    inter-op pool to one thread (our parallelism is within operations). Returns the count."""
    import torch

    count = threads if threads and threads > 0 else free_cores()
    torch.set_num_threads(count)
    with contextlib.suppress(RuntimeError):  # it can be set once per process, before use
        torch.set_num_interop_threads(1)
    return count
