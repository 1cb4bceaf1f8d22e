"""Training batches made in DataLoader worker processes, so that the degradation, cropping and
query sampling run beside the model instead of between its steps.

Each worker draws from its own random stream, seeded by (seed, rank, worker, first step): a run
is reproducible for a given number of processes and workers, and a resume starts fresh streams
at its step. The DataLoader takes the workers' batches in turn, so their order is fixed too.
With one process and no workers, train.py keeps drawing in the main process from the random
state saved in its checkpoints, exactly as before workers existed.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from training.data import Mixture

STREAM_TAG = 0x5EED


class BatchStream(IterableDataset):
    """An endless stream of batches of `batch` samples (this rank's share)."""

    def __init__(self, data: Mixture, batch: int, patch: int, queries: int, deformation: bool,
                 seed: int, rank: int, start_step: int) -> None:
        super().__init__()
        self.data = data
        self.shape = (batch, patch, queries, deformation)
        self.seed = (seed, rank, start_step)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        info = get_worker_info()
        worker = info.id if info is not None else 0
        seed, rank, start = self.seed
        # The tag word keeps these streams apart from default_rng(seed) of the in-process path:
        # numpy's SeedSequence ignores trailing zero words, so [seed, 0, 0, 0] would equal it.
        rng = np.random.default_rng([seed, rank, worker, start, STREAM_TAG])
        batch, patch, queries, deformation = self.shape
        while True:
            yield self.data.batch(rng, batch, patch, queries, deformation)


def batch_loader(stream: BatchStream, workers: int, pin_memory: bool) -> Iterator[dict]:
    loader = DataLoader(stream, batch_size=None, num_workers=workers, pin_memory=pin_memory,
                        persistent_workers=workers > 0, prefetch_factor=4 if workers else None)
    return iter(loader)
