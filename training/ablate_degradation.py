"""Measure each stage of the synthetic degradation by leaving it out (issue 9, item 4).

One short compact-DDIR run per variant of `training.degradation.VARIANTS`, trained on the
synthetic degradation alone (no City100: the real camera stays unseen), same seed, data order
and budget; then each run is scored on the City100 iPhone X validation scenes (a real camera
none of them saw) and on synthetic sets made with the full degradation:

    python -m training.ablate_degradation --photos ../shared/data/photos \\
        --city100 ../shared/data/city100_iphonex --synthetic ../shared/data/benchmarks/set14 \\
        --synthetic ../shared/data/benchmarks/b100 --limit 20 --iterations 1000 --threads 1 \\
        --variants full,no-blur,no-noise,no-sharpen,area-only --runs runs/ablate \\
        --json benchmarks/results/degradation_ablation.json

A run that is already complete is not trained again, one that stopped is resumed, so the
variants can be trained in parallel processes (`--variants full,no-blur --skip-eval`) and
scored by a last call. `--add` scores only the given variants and adds their columns to an
existing `--json` report made with the same budget and seed (a variant made later):

    python -m training.ablate_degradation ... --variants no-jpeg --add \
        --json benchmarks/results/degradation_ablation.json

The synthetic sets favour the variants whose degradation made them; the City100 column is the
one that says which stages help on a camera the model never saw.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

from ddir_zoom.imaging.io import write_text_atomic
from ddir_zoom.models import load_checkpoint
from ddir_zoom.threads import configure
from training.degradation import VARIANTS
from training.evaluate import bicubic_method, city100_pairs, model_method, score, synthetic_pairs


def run_state(run: Path) -> int:
    """Step reached by the run in `run` (0: none)."""
    last = run / "last.pt"
    if not last.exists():
        return 0
    return int(torch.load(last, map_location="cpu", weights_only=True)["step"])


def train(variant: str, args: argparse.Namespace) -> Path:
    run = Path(args.runs) / variant
    step = run_state(run)
    if step >= args.iterations:
        return run
    if step:
        command = ["--resume", str(run / "last.pt")]
    else:
        command = ["--model", "ddir", "--preset", "compact", "--degradation", variant,
                   "--val-every", str(args.iterations), "--lr-step", str(args.lr_step),
                   "--seed", str(args.seed), "--batch", str(args.batch), "--patch",
                   str(args.patch), "--queries", str(args.queries), "--out", str(run)]
        for folder in args.photos:
            command += ["--photos", folder]
    command += ["--iterations", str(args.iterations), "--threads", str(args.threads)]
    print(f"[{variant}] python -m training.train {' '.join(command)}", flush=True)
    subprocess.run([sys.executable, "-m", "training.train", *command], check=True)
    if run_state(run) < args.iterations:
        raise SystemExit(f"[{variant}] stopped before step {args.iterations}; run again to resume")
    return run


def evaluate(variants: list[str], args: argparse.Namespace) -> dict:
    datasets = []
    if args.city100:
        datasets.append(("City100 iPhone X (real, unseen)", 2.4, city100_pairs(args.city100)))
    scales = [float(s) for s in args.scales.split(",")]
    for folder in args.synthetic:
        for s in scales:
            datasets.append((f"{Path(folder).name} (synthetic, full degradation)", s,
                             synthetic_pairs(folder, s, limit=args.limit)))
    methods = {"bicubic": bicubic_method}
    for variant in variants:
        model, _ = load_checkpoint(Path(args.runs) / variant / "best.safetensors")
        methods[variant] = model_method(model)
    report = {"iterations": args.iterations, "seed": args.seed, "results": []}
    for title, s, pairs in datasets:
        start = time.perf_counter()
        table = score(pairs, methods)
        report["results"].append({"dataset": title, "scale": s, "table": table})
        print(f"{title} x{s:g}: " + ", ".join(f"{m} {r['psnr']:.2f}" for m, r in table.items())
              + f" ({time.perf_counter() - start:.0f} s)", flush=True)
    return report


def merge(old: dict, new: dict) -> dict:
    """`old` report with the variants of `new` added (same budget, seed and datasets)."""
    for key in ("iterations", "seed"):
        if old[key] != new[key]:
            raise SystemExit(f"--add: the report has {key} {old[key]}, this call {new[key]}")
    rows = {(r["dataset"], r["scale"]): r for r in old["results"]}
    for row in new["results"]:
        key = (row["dataset"], row["scale"])
        if key not in rows:
            raise SystemExit(f"--add: the report has no row {key[0]} x{key[1]:g}")
        if abs(rows[key]["table"]["bicubic"]["psnr"] - row["table"]["bicubic"]["psnr"]) > 1e-6:
            raise SystemExit(f"--add: bicubic scores differently on {key[0]} x{key[1]:g}: "
                             "not the same images")
        for method, result in row["table"].items():
            if method != "bicubic":
                rows[key]["table"][method] = result
    return old


def markdown(report: dict) -> str:
    rows = report["results"]
    variants = list(rows[0]["table"])
    head = "| degradation | " + " | ".join(f"{r['dataset']} x{r['scale']:g}" for r in rows) + " |"
    lines = [head, "|---" * (len(rows) + 1) + "|"]
    for v in variants:
        cells = []
        for r in rows:
            trained = [x for x in r["table"] if x != "bicubic"]
            best = max(trained, key=lambda m: r["table"][m]["psnr"])
            text = f"{r['table'][v]['psnr']:.2f}"
            cells.append(f"**{text}**" if v == best else text)
        label = "bicubic (no training)" if v == "bicubic" else v
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m training.ablate_degradation", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--photos", action="append", required=True, metavar="DIR")
    p.add_argument("--city100", metavar="DIR", help="City100 folder (validation scenes scored)")
    p.add_argument("--synthetic", action="append", default=[], metavar="DIR")
    p.add_argument("--scales", default="2.3,3.7", help="scales for --synthetic")
    p.add_argument("--limit", type=int, help="the first N images of each --synthetic folder")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--iterations", type=int, default=1000)
    p.add_argument("--lr-step", type=int, default=700, help="halve the learning rate here")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--patch", type=int, default=48)
    p.add_argument("--queries", type=int, default=2304)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs", default="runs/ablate", help="folder of the runs")
    p.add_argument("--skip-eval", action="store_true", help="train only")
    p.add_argument("--json", help="write the scores here")
    p.add_argument("--add", action="store_true",
                   help="add the variants' columns to the existing --json report")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        raise SystemExit(f"unknown variants {', '.join(sorted(unknown))}; "
                         f"choose from {', '.join(VARIANTS)}")
    if args.add and not (args.json and Path(args.json).is_file()):
        raise SystemExit("--add needs --json, an existing report to add to")
    for variant in variants:
        train(variant, args)
    if args.skip_eval:
        return 0
    configure(args.threads)
    with torch.inference_mode():
        report = evaluate(variants, args)
    if args.add:
        report = merge(json.loads(Path(args.json).read_text()), report)
    print(markdown(report))
    if args.json:
        write_text_atomic(args.json, json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
