"""Decoder throughput: plain path vs fast (projected first layer) path, on the current device.

For each model and preset: output megapixels per second and achieved GFLOP/s (the FLOPs each
path really performs, from `ImplicitSR.flops`), decoding every pixel of an upscale of a random
LR image from cached features, each path at its best chunk size:
- plain: our reference path (each neighbour's 3x3 latent gathered per query, the MLP on the
  concatenated input);
- fast: the projected first layer (`LocalImplicitDecoder.project`);
- liif-code: decoding as the LIIF / RealArbiSR code does it (`liif_code_decode` below: the
  whole feature map unfolded to 9C x H x W in every chunk, neighbours found by grid_sample in
  normalised coordinates, chunks of 30000 queries), on the same weights.
Also the fast path including the projection of the LR positions it uses (amortised at this
scale), and the machine's fp32 matmul throughput measured in the same run. Weights are random:
speed does not depend on them.

    python benchmarks/decode.py                    # both models, both presets
    python benchmarks/decode.py --device cuda --lr-size 256x256
    python benchmarks/decode.py --presets compact --json decode.json

Target (paper preset, on the 2-core CPU of our machines): fast >= 2.5x plain and >= 70% of the
measured matmul throughput.
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

import torch
import torch.nn.functional as F

from ddir_zoom.models import LatentGrid, make_preset, pick_device, upscale_queries
from ddir_zoom.models.base import ImplicitSR


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def best_time(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    fn()  # warm-up
    synchronize(device)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best


def matmul_gflops(device: torch.device, repeats: int) -> float:
    """The machine's fp32 matmul throughput: the best of a few shapes (square, and the tall-skinny
    shape of a 256-wide MLP layer), each the best of `repeats`."""
    best = 0.0
    for m, k, n in ((2048, 2048, 2048), (1024, 1024, 1024), (4096, 256, 256)):
        a = torch.randn(m, k, device=device)
        b = torch.randn(k, n, device=device)
        calls = max(1, int(4e9 / (2 * m * k * n))) * (1 if device.type == "cpu" else 10)

        def run(a: torch.Tensor = a, b: torch.Tensor = b, calls: int = calls) -> None:
            for _ in range(calls):
                torch.mm(a, b)

        best = max(best, 2 * m * k * n * calls / best_time(run, device, repeats) / 1e9)
    return best


def liif_code_decode(model: ImplicitSR, features: dict[str, torch.Tensor], coords: torch.Tensor,
                     cells: torch.Tensor, appearance: torch.Tensor | None) -> torch.Tensor:
    """One chunk decoded the way the LIIF and RealArbiSR code does: unfold the whole feature
    map, find neighbours with grid_sample in [-1, 1] coordinates, run the MLP per neighbour."""
    h, w = next(iter(features.values())).shape[-2:]
    size = torch.tensor([h, w], device=coords.device, dtype=torch.float32)
    coord = (coords.float() / size) * 2 - 1  # LR pixels -> LIIF's normalised coordinates
    rel_cell = cells * 2
    ys = -1 + (2 * torch.arange(h, device=coords.device) + 1) / h
    xs = -1 + (2 * torch.arange(w, device=coords.device) + 1) / w
    feat_coord = torch.stack(torch.meshgrid(ys, xs, indexing="ij"), 0)[None]

    def branch(name: str, extra: torch.Tensor | None) -> torch.Tensor:
        feat = features[model.feature_of[name]]
        unfolded = F.unfold(feat, 3, padding=1).view(1, -1, h, w)
        preds, areas = [], []
        for vy in (-1, 1):
            for vx in (-1, 1):
                shifted = coord.clone()
                shifted[..., 0] += vy / h + 1e-6
                shifted[..., 1] += vx / w + 1e-6
                grid = shifted.clamp(-1 + 1e-6, 1 - 1e-6).flip(-1).unsqueeze(1)
                q_feat = F.grid_sample(unfolded, grid, mode="nearest", align_corners=False)
                q_coord = F.grid_sample(feat_coord, grid, mode="nearest", align_corners=False)
                q_feat = q_feat[:, :, 0].permute(0, 2, 1)
                rel = (coord - q_coord[:, :, 0].permute(0, 2, 1)) * size
                parts = [q_feat, rel, rel_cell] + ([extra] if extra is not None else [])
                preds.append(model.decoders[name].mlp(torch.cat(parts, -1)))
                areas.append((rel[..., 0] * rel[..., 1]).abs() + 1e-9)
        total = torch.stack(areas).sum(0)
        return sum(p * (a / total).unsqueeze(-1)
                   for p, a in zip(preds, areas[::-1], strict=True))

    if model.name == "ddir":
        n = coords.shape[1]
        deformation = branch("deformation", appearance[:, None].expand(1, n, -1))
        return branch("sr", deformation)
    return branch("sr", None)


def bench_model(model: ImplicitSR, device: torch.device, lr_size: tuple[int, int], scale: float,
                chunks: list[int], repeats: int) -> dict:
    h, w = lr_size
    lr = torch.rand(1, 3, h, w, device=device)
    out_shape = (round(h * scale), round(w * scale))
    coords, cells = upscale_queries(scale, out_shape, device=device)
    coords, cells = coords[None], cells[None].float()
    n = coords.shape[1]
    flops = model.flops()
    with torch.inference_mode():
        features = model.encode(lr)
        appearance = model.appearance_embedding(features)
        project_s = best_time(lambda: model.project(features), device, repeats)
        grids = {b: LatentGrid(v) for b, v in model.project(features).items()}

        def fast(chunk: int) -> None:
            for s in range(0, n, chunk):
                model.decode(grids, coords[:, s:s + chunk], cells[:, s:s + chunk], (h, w),
                             appearance)

        def plain(chunk: int) -> None:
            for s in range(0, n, chunk):
                model.decode_plain(features, coords[:, s:s + chunk], cells[:, s:s + chunk],
                                   appearance)

        def liif_code(chunk: int) -> None:
            for s in range(0, n, chunk):
                liif_code_decode(model, features, coords[:, s:s + chunk], cells[:, s:s + chunk],
                                 appearance)

        # The three paths compute the same pixels.
        sample = slice(0, min(n, 512))
        reference = model.decode_plain(features, coords[:, sample], cells[:, sample],
                                       appearance)["rgb"]
        same = model.decode(grids, coords[:, sample], cells[:, sample], (h, w), appearance)["rgb"]
        code = liif_code_decode(model, features, coords[:, sample], cells[:, sample], appearance)
        assert (same - reference).abs().max() < 1e-4 and (code - reference).abs().max() < 1e-4

        result = {"output_pixels": n, "project_s_per_lr_mp": project_s / (h * w / 1e6)}
        for name, fn, per_pixel, tried in (
                ("fast", fast, flops["decode_fast_per_output_pixel"], chunks),
                ("plain", plain, flops["decode_plain_per_output_pixel"], chunks),
                ("liif_code", liif_code, flops["decode_plain_per_output_pixel"], [30000])):
            times = {c: best_time(lambda c=c, fn=fn: fn(c), device, repeats) for c in tried}
            chunk = min(times, key=times.get)
            seconds = times[chunk]
            result[name] = {"mp_per_s": n / seconds / 1e6, "gflops": per_pixel * n / seconds / 1e9,
                            "chunk": chunk, "seconds": seconds,
                            "flops_per_pixel": per_pixel}
        # The fast path also needs the projections of the LR positions it reads; in the viewer
        # they are cached with the features, so they are paid once per LR pixel, not per frame.
        total = result["fast"]["seconds"] + project_s
        result["fast_with_projection_mp_per_s"] = n / total / 1e6
        result["speedup"] = result["plain"]["seconds"] / result["fast"]["seconds"]
        result["speedup_vs_liif_code"] = (result["liif_code"]["seconds"]
                                          / result["fast"]["seconds"])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--models", default="ddir,liif")
    parser.add_argument("--presets", default="paper,compact")
    parser.add_argument("--lr-size", default="96x128", help="LR image HxW")
    parser.add_argument("--scale", type=float, default=2.5)
    parser.add_argument("--chunks", default="512,1024,2048,4096",
                        help="chunk sizes (queries) tried for each path; the best is reported")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)

    device = pick_device(args.device)
    torch.manual_seed(0)
    lr_size = tuple(int(v) for v in args.lr_size.lower().split("x"))
    chunks = [int(c) for c in args.chunks.split(",")]
    peak = matmul_gflops(device, max(5, args.repeats))
    machine = (f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
               if device.type == "cpu" else str(device))
    print(f"device {device} ({machine}), torch {torch.__version__}; "
          f"fp32 matmul (best shape): {peak:.0f} GFLOP/s; "
          f"LR {lr_size[0]}x{lr_size[1]} x{args.scale:g}")
    print()
    print("| model | preset | LIIF-code MP/s | plain MP/s | plain GFLOP/s | fast MP/s | "
          "fast GFLOP/s | fast / plain | fast / LIIF-code | fast % of matmul | "
          "fast incl. projection MP/s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for preset in args.presets.split(","):
        for name in args.models.split(","):
            model = make_preset(name, preset).to(device).eval().use_channels_last()
            r = bench_model(model, device, lr_size, args.scale, chunks, args.repeats)
            rows.append({"model": name, "preset": preset, **r})
            print(f"| {name} | {preset} | {r['liif_code']['mp_per_s']:.4f} | "
                  f"{r['plain']['mp_per_s']:.4f} | "
                  f"{r['plain']['gflops']:.0f} | {r['fast']['mp_per_s']:.4f} | "
                  f"{r['fast']['gflops']:.0f} | {r['speedup']:.2f}x | "
                  f"{r['speedup_vs_liif_code']:.2f}x | "
                  f"{100 * r['fast']['gflops'] / peak:.0f}% | "
                  f"{r['fast_with_projection_mp_per_s']:.4f} |", flush=True)
    print()
    verdicts = []
    for r in rows:
        if r["preset"] == "paper":
            ok = r["speedup"] >= 2.5 and r["fast"]["gflops"] >= 0.7 * peak
            verdicts.append(ok)
            print(f"target {r['model']} paper: fast/plain {r['speedup']:.2f}x (>= 2.5), "
                  f"{100 * r['fast']['gflops'] / peak:.0f}% of matmul (>= 70%): "
                  f"{'met' if ok else 'NOT met'} (fast/LIIF-code "
                  f"{r['speedup_vs_liif_code']:.2f}x)")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"device": str(device), "machine": machine, "matmul_gflops": peak,
                       "lr_size": lr_size, "scale": args.scale, "results": rows}, handle, indent=2)
    return 0 if all(verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
