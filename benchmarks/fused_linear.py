"""Hidden layers of the fast decoding path: addmm then ReLU, against one oneDNN product with the
bias and ReLU fused (`models.implicit.FUSED_MAX_WIDTH`), on one CPU thread.

Two measurements, each alternating the two ways in one process (this project's machines vary
by 10-25% between runs, far more than between alternating calls):
- one hidden layer of 4 x 4096 rows (a compact chunk's neighbours) or 4 x 1024 (a paper-size
  chunk's), at widths 64, 128 and 256;
- one whole decoding chunk of DDIR (compact: 4096 queries; paper: 1024), random weights.

    python benchmarks/fused_linear.py --json benchmarks/results/fused_linear_cpu.json
"""

from __future__ import annotations

import ddir_zoom  # noqa: F401  (the viewer's thread policy, set before torch loads)

# isort: split

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable

import numpy as np
import torch

from ddir_zoom.models import implicit, make_preset, upscale_queries


def alternate(ways: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median milliseconds of each way, called in turn `repeats` times."""
    times: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(repeats):
        for name, way in ways.items():
            start = time.perf_counter()
            way()
            times[name].append(time.perf_counter() - start)
    return {name: 1000 * float(np.median(t)) for name, t in times.items()}


def layer_row(width: int, count: int, repeats: int) -> dict:
    torch.manual_seed(0)
    layer = torch.nn.Linear(width, width)
    x = torch.relu(torch.randn(count, width))
    with torch.inference_mode():
        ms = alternate({
            "addmm": lambda: torch.relu_(torch.addmm(layer.bias, x, layer.weight.t())),
            "fused": lambda: torch.ops.mkldnn._linear_pointwise(
                x, layer.weight, layer.bias, "relu", [None], ""),
        }, repeats)
    print(f"| layer | {width} wide, {count} rows | {ms['addmm']:.2f} | {ms['fused']:.2f} | "
          f"{ms['addmm'] / ms['fused']:.2f}x |", flush=True)
    return {"width": width, "rows": count, **ms}


def chunk_row(preset: str, queries: int, repeats: int) -> dict:
    torch.manual_seed(0)
    model = make_preset("ddir", preset).eval()
    limit = implicit.FUSED_MAX_WIDTH
    with torch.inference_mode():
        grids, appearance = model.prepare(torch.rand(1, 3, 80, 80))
        coords, cells = upscale_queries((2.5, 2.5), (128, 128), (60, 60))
        coords, cells = coords[None, :queries], cells[None, :queries].float()

        def decode(fused: bool) -> Callable[[], torch.Tensor]:
            def run() -> torch.Tensor:
                # Every hidden layer, whatever its width, one way or the other.
                implicit._FUSED, implicit.FUSED_MAX_WIDTH = fused, 1 << 30
                return model.decode(grids, coords, cells, (80, 80), appearance)["rgb"]
            return run

        try:
            ms = alternate({"addmm": decode(False), "fused": decode(True)}, repeats)
            difference = float((decode(True)() - decode(False)()).abs().max())
        finally:
            implicit._FUSED, implicit.FUSED_MAX_WIDTH = implicit._fused_available(), limit
    print(f"| DDIR {preset} chunk | {queries} queries | {ms['addmm']:.2f} | {ms['fused']:.2f} | "
          f"{ms['addmm'] / ms['fused']:.2f}x |", flush=True)
    return {"preset": preset, "queries": queries, **ms, "max_difference": difference}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=60)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    if not implicit._fused_available():
        print("this torch has no oneDNN fused linear: nothing to compare", file=sys.stderr)
        return 1
    torch.set_num_threads(1)
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, one thread, "
          f"median of {args.repeats} alternating calls\n")
    print("| what | size | addmm + ReLU (ms) | fused (ms) | speed-up |")
    print("|---|---|---|---|---|")
    result = {"layers": [layer_row(width, count, args.repeats)
                         for width, count in ((64, 4 * 4096), (128, 4 * 2048), (256, 4 * 1024))],
              "chunks": [chunk_row(preset, queries, args.repeats)
                         for preset, queries in (("compact", 4096), ("paper", 1024))]}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
