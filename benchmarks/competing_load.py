"""A competing CPU load for the speed benchmarks: single-threaded matrix products in separate
processes, as other programs on the machine would be (benchmarks/viewport.py --load,
benchmarks/wait_policy.py)."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import time
from collections.abc import Iterator


def burn(stop: float) -> None:
    """One competing program: single-threaded matrix products until `stop` (time.time())."""
    os.environ["OMP_NUM_THREADS"] = "1"
    import numpy as np

    a = np.random.default_rng(0).random((256, 256), np.float32)
    while time.time() < stop:
        a = (a @ a) / 256.0


@contextlib.contextmanager
def competing_load(processes: int) -> Iterator[None]:
    """`processes` busy processes while the block runs (they have the cores when it starts)."""
    context = multiprocessing.get_context("spawn")
    burners = [context.Process(target=burn, args=(time.time() + 3600,), daemon=True)
               for _ in range(processes)]
    for p in burners:
        p.start()
    time.sleep(1.0)  # let them take the cores
    try:
        yield
    finally:
        for p in burners:
            p.terminate()
            p.join()
