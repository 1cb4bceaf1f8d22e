"""Pack a run's `last.pt` small enough to commit, so that a later session (a new machine) resumes.

A paper-size DDIR's `last.pt` is 38 MB: float32 weights (12.6 MB) and Adam's two moment estimates
(25 MB). The moments only steer the next steps' size and direction, so bfloat16 keeps what they
carry (their 8-bit exponent holds the squared gradients' range; 3 significant digits are plenty
for a running average) at half the bytes; the weights, and their average if the run keeps one
(`--ema`, 12.6 MB more), stay float32, exact. `torch.optim.Adam` casts the moments back to
float32 when `--resume` loads them, so nothing else changes:

    python -m training.resume_pack runs/ddir_paper_long/last.pt training/resume/ddir_paper_last.pt
    python -m training.train --resume training/resume/ddir_paper_last.pt --max-hours 2

The resumed run writes to the run folder recorded in the file (its `out`), as any resume does.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch


def pack_state(state: dict) -> dict:
    """A copy of a training state whose optimizer moments are bfloat16 (weights untouched)."""
    optimizer = state["optimizer"]
    packed_params = {}
    for index, entry in optimizer["state"].items():
        packed_params[index] = {
            key: value.to(torch.bfloat16)
            if torch.is_tensor(value) and value.is_floating_point() and key != "step" else value
            for key, value in entry.items()}
    return {**state, "optimizer": {**optimizer, "state": packed_params}}


def pack(source: str | Path, target: str | Path) -> int:
    """Write `source`'s packed state to `target` atomically; return the bytes written."""
    state = torch.load(source, map_location="cpu", weights_only=True)
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    torch.save(pack_state(state), part)
    os.replace(part, target)
    return target.stat().st_size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="a run's last.pt")
    parser.add_argument("target", help="where the packed state goes (e.g. training/resume/)")
    args = parser.parse_args(argv)
    size = pack(args.source, args.target)
    whole = Path(args.source).stat().st_size
    print(f"{args.target}: {size / 1e6:.1f} MB (from {whole / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
