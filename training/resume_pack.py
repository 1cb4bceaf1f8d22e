"""Pack a run's `last.pt` small enough to commit, so that a later session (a new machine) resumes.

A paper-size DDIR's `last.pt` is 38 MB, 51 with `--ema`: the float32 weights (12.6 MB), their
average, and Adam's two moment estimates. What a later session needs is the model and where the
run stands (step, schedule, random streams, settings), so the packed state keeps exactly that:
the weights the run would ship (the average when it keeps one, else the raw weights), float32
and exact, 12.6 MB. Adam starts afresh on the resume, as it does after `--init` (its moments
re-estimate within a few dozen steps), and the average, if the run keeps one, restarts from the
packed weights:

    python -m training.resume_pack runs/ddir_paper_long/last.pt training/resume/ddir_paper_last.pt
    python -m training.train --resume training/resume/ddir_paper_last.pt --max-hours 2

The resumed run writes to the run folder recorded in the file (its `out`), as any resume does.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ddir_zoom.imaging.io import atomic_output


def pack_state(state: dict) -> dict:
    """A training state with only the weights to ship as its model: no optimiser, no average."""
    packed = {k: v for k, v in state.items() if k not in ("optimizer", "ema")}
    packed["model"] = state.get("ema", state["model"])
    return packed


def pack(source: str | Path, target: str | Path) -> int:
    """Write `source`'s packed state to `target` atomically; return the bytes written."""
    state = torch.load(source, map_location="cpu", weights_only=True)
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(target) as handle:
        torch.save(pack_state(state), handle)
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
