"""Several processes, one training: torch.distributed as `torchrun` starts it.

    torchrun --nproc_per_node 2 -m training.train ...            # one machine, 2 processes
    torchrun --nnodes 2 --node_rank 0 --nproc_per_node 8 \\
        --rdzv_backend c10d --rdzv_endpoint host0:29500 -m training.train ...

Without torchrun (no WORLD_SIZE in the environment) nothing here does anything and training is a
single process. NCCL connects CUDA processes, gloo CPU ones. Every rank runs the same steps on
its own share of the global batch; DistributedDataParallel averages the gradients, so the
weights stay identical on every rank.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ddir_zoom.models import pick_device


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0 validates, logs, shows progress and writes checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def setup(device: str = "auto") -> tuple[Ranks, torch.device]:
    """Join the process group torchrun describes (if any) and pick this rank's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Ranks(), pick_device(device)
    ranks = Ranks(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if device in ("auto", "cuda") and torch.cuda.is_available():
        chosen = torch.device("cuda", ranks.local_rank)
        torch.cuda.set_device(chosen)
        backend = "nccl"
    else:
        chosen = pick_device("cpu" if device == "auto" else device)
        backend = "gloo"
    dist.init_process_group(backend)
    return ranks, chosen


def any_rank(ranks: Ranks, flag: bool, device: torch.device) -> bool:
    """True on every rank when `flag` is true on any (a signal, the time limit)."""
    if not ranks.distributed:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def from_main(ranks: Ranks, value: float, device: torch.device) -> float:
    """Rank 0's `value` on every rank (a decision only rank 0 can make: patience)."""
    if not ranks.distributed:
        return value
    tensor = torch.tensor([value], device=device, dtype=torch.float64)
    dist.broadcast(tensor, src=0)
    return float(tensor.item())


def barrier(ranks: Ranks) -> None:
    if ranks.distributed:
        dist.barrier()


def teardown(ranks: Ranks) -> None:
    if ranks.distributed and dist.is_initialized():
        dist.destroy_process_group()
