"""Decoding a viewport tile in pieces side by side, against each operation spread over the threads.

For the shipped student and the shipped paper-size DDIR (fp32, and bfloat16 where the CPU has
native bfloat16 products): the time to decode one 128x128 render tile at x2.5 from cached
projections with `model.query`, in pieces (`ddir_zoom.parallel`, the default) and with
`DDIR_ZOOM_PIECES=0` (torch spreading each operation over the threads), best of `--repeats`,
alternating the two so that a machine's drift hits both. Random LR input: speed does not depend
on it.

    python benchmarks/pieces.py --json benchmarks/results/pieces_cpu.json   # > pieces_cpu.txt
"""

from __future__ import annotations

import ddir_zoom  # noqa: F401  (the viewer's thread policy, set before torch loads)

# isort: split

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

from ddir_zoom.imaging.io import write_text_atomic
from ddir_zoom.models import load_checkpoint, upscale_queries
from ddir_zoom.models.precision import native_bfloat16
from ddir_zoom.resources import bundled_first_pass, bundled_weights


def tile_times(path: Path, precision: str, repeats: int) -> dict[str, float]:
    model = load_checkpoint(path)[0].eval()
    model.use_channels_last()
    model.set_precision(precision)
    torch.manual_seed(0)
    grids, appearance = model.prepare(torch.rand(1, 3, 60, 60))
    coords, cells = upscale_queries(2.5, (128, 128), (0, 0))
    coords, cells = coords[None], cells[None].float()
    best = {"pieces": float("inf"), "spread": float("inf")}
    for _ in range(repeats):
        for mode, flag in (("pieces", "1"), ("spread", "0")):
            os.environ["DDIR_ZOOM_PIECES"] = flag
            start = time.perf_counter()
            model.query(grids, coords, cells, (60, 60), appearance)
            best[mode] = min(best[mode], time.perf_counter() - start)
    os.environ.pop("DDIR_ZOOM_PIECES", None)
    return {mode: 1000 * seconds for mode, seconds in best.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    precisions = ["float32"] + (["bfloat16"] if native_bfloat16(torch.device("cpu")) else [])
    print(f"{torch.get_num_threads()} threads; one 128x128 tile at x2.5, best of "
          f"{args.repeats}\n")
    print("| model | precision | in pieces (ms) | spread over the threads (ms) | gain |")
    print("|---|---|---|---|---|")
    rows = []
    for name, path in (("student", bundled_first_pass("ddir")), ("paper", bundled_weights("ddir"))):
        for precision in precisions:
            t = tile_times(path, precision, args.repeats)
            rows.append({"model": name, "precision": precision, **t})
            print(f"| {name} | {precision} | {t['pieces']:.1f} | {t['spread']:.1f} | "
                  f"{t['spread'] / t['pieces']:.2f}x |", flush=True)
    if args.json:
        write_text_atomic(args.json, json.dumps({"threads": torch.get_num_threads(),
                                                 "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
