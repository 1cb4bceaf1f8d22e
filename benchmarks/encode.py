"""Encoder cost: one feature tile as the engine encodes it, for DDIR encoders of several depths.

A cold view encodes the feature tiles under it (`engine.features`: 128 LR pixels a side plus the
halo the encoder's receptive field needs), so the first pass's encoder depth is what a cold view
costs beyond a warm one. For each depth: milliseconds per tile (both of DDIR's encoders, or
with --shared also the one encoder both branches share, channels_last as the viewer runs
them), seconds per LR megapixel of tile (halo included), achieved GFLOP/s, and the machine's
fp32 matmul throughput measured in the same run.

    python benchmarks/encode.py --json benchmarks/results/encode_cpu.json   # > encode_cpu.txt
    python benchmarks/encode.py --blocks 1,2,4,16 --feats 32,64
    python benchmarks/encode.py --blocks 2 --shared   # the first pass: two encoders or one
"""

from __future__ import annotations

import ddir_zoom  # noqa: F401  (the viewer's thread policy, set before torch loads)

# isort: split

import argparse
import json
import platform
import sys
from pathlib import Path

import torch

from ddir_zoom.models import make_model, pick_device

sys.path.insert(0, str(Path(__file__).resolve().parent))
from decode import best_time, matmul_gflops  # the decoding benchmark's measures

TILE = 128


def bench_encoder(blocks: int, feats: int, device: torch.device, repeats: int,
                  shared: bool = False) -> dict:
    model = make_model({"model": "ddir", "encoder": {"n_resblocks": blocks, "n_feats": feats},
                        "hidden": [32, 32], "shared_encoder": shared}
                       ).to(device).eval().use_channels_last()
    side = TILE + 2 * model.halo  # the tile, its ring and the encoder's context (FeatureTiles)
    lr = torch.rand(1, 3, side, side, device=device)
    with torch.inference_mode():
        seconds = best_time(lambda: model.encode(lr), device, repeats)
    flops = model.flops()["encode_per_lr_pixel"] * side * side
    return {"n_resblocks": blocks, "n_feats": feats, "shared_encoder": shared,
            "halo": model.halo, "side": side,
            "ms_per_tile": seconds * 1e3, "s_per_tile_lr_mp": seconds / (TILE * TILE / 1e6),
            "gflops": flops / seconds / 1e9}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--blocks", default="1,2,4", help="residual blocks per encoder")
    parser.add_argument("--feats", default="32", help="channels")
    parser.add_argument("--shared", action="store_true",
                        help="also measure each size with one encoder shared by both branches")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)

    device = pick_device(args.device)
    torch.manual_seed(0)
    peak = matmul_gflops(device, 5)
    machine = (f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
               if device.type == "cpu" else str(device))
    print(f"device {device} ({machine}), torch {torch.__version__}; fp32 matmul (best shape): "
          f"{peak:.0f} GFLOP/s; a {TILE}-pixel feature tile with its halo, both DDIR encoders "
          f"(or the one they share)")
    print()
    print("| blocks x channels | encoders | halo | ms per tile | s per LR megapixel | GFLOP/s "
          "| % of matmul |")
    print("|---|---|---|---|---|---|---|")
    rows = []
    for feats in (int(f) for f in args.feats.split(",")):
        for blocks in (int(b) for b in args.blocks.split(",")):
            for shared in (False, True) if args.shared else (False,):
                r = bench_encoder(blocks, feats, device, args.repeats, shared)
                rows.append(r)
                print(f"| {blocks} x {feats} | {'one shared' if shared else 'two'} | "
                      f"{r['halo']} | {r['ms_per_tile']:.1f} | "
                      f"{r['s_per_tile_lr_mp']:.2f} | {r['gflops']:.0f} | "
                      f"{100 * r['gflops'] / peak:.0f}% |", flush=True)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"device": str(device), "machine": machine, "matmul_gflops": peak,
                       "tile": TILE, "results": rows}, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
