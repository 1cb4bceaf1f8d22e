"""The first zoom into a photo seen whole, as a user meets it: the 24 MP JPEG of
`viewport.py` opened and shown at fit in a 1280x800 viewport until the idle worker has
prefetched what it plans (the first pass's features, then its tone anchor at x1.5 and x3,
`progressive.PREFETCH_ANCHOR_REFERENCES`), then one zoom to each scale at the photo's centre:
the time to the fully refined view. `--no-anchor-prefetch` prefetches the features only (as
before 2026-11-24), for a comparison. A fresh engine per scale, so each zoom is the first.

    python benchmarks/first_zoom.py --json benchmarks/results/first_zoom_cpu.json
    python benchmarks/first_zoom.py --no-anchor-prefetch \
        --json benchmarks/results/first_zoom_features_only_cpu.json
"""

from __future__ import annotations

import ddir_zoom  # noqa: F401  (the viewer's thread policy, set before torch loads)

# isort: split

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from ddir_zoom.engine import Engine, View, progressive
from ddir_zoom.engine.progressive import ProgressiveRenderer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from viewport import VIEWPORT, add_models, make_big_jpeg, time_view

from ddir_zoom.imaging.io import write_text_atomic


def first_zoom(photo: Path, scale: float, method: str, models: list[str],
               device: str) -> dict:
    """Open `photo`, show it whole until prefetching ends, zoom to `scale` at its centre."""
    engine = Engine.open(photo, device=device)
    add_models(engine, ["paper"], models)
    renderer = ProgressiveRenderer(engine, lambda update: None)
    try:
        start = time.perf_counter()
        fit = View.fit(engine.size, VIEWPORT)
        time_view(renderer, fit, method)
        while renderer.prefetching:
            time.sleep(0.02)
        prefetched = time.perf_counter() - start
        view = View.centred(scale, (engine.size[0] / 2, engine.size[1] / 2), VIEWPORT)
        zoom = time_view(renderer, view, method)
        return {"scale": scale, "method": method, "seen_whole_s": prefetched,
                "first_tile_s": zoom["first_tile_s"], "full_s": zoom["full_s"],
                "first_pass_s": zoom["first_pass_s"]}
    finally:
        renderer.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--scales", default="1.5,2.5,4")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-anchor-prefetch", action="store_true",
                        help="prefetch the features only")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    if args.no_anchor_prefetch:
        progressive.PREFETCH_ANCHOR_REFERENCES = ()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        photo = make_big_jpeg(Path(folder) / "big.jpg")
        print(f"device {args.device}, {torch.get_num_threads()} threads; the student alone "
              f"(the viewer's first pass); anchor prefetched: "
              f"{'no' if args.no_anchor_prefetch else 'x1.5 and x3'}\n")
        print("| scale | seen whole until prefetched (s) | first tile (s) | full (s) |")
        print("|---|---|---|---|")
        for scale in (float(s) for s in args.scales.split(",")):
            runs = [first_zoom(photo, scale, "ddir-student", ["student"], args.device)
                    for _ in range(args.repeats)]
            full = sorted(r["full_s"] for r in runs)
            row = {"scale": scale, "runs": runs, "full_s": full[len(full) // 2]}
            rows.append(row)
            print(f"| x{scale:g} | {sorted(r['seen_whole_s'] for r in runs)[len(runs) // 2]:.1f}"
                  f" | {sorted(r['first_tile_s'] for r in runs)[len(runs) // 2]:.2f} | "
                  f"{row['full_s']:.2f} [{full[0]:.2f}-{full[-1]:.2f}] |", flush=True)
    if args.json:
        write_text_atomic(args.json, json.dumps(
            {"anchor_prefetch": not args.no_anchor_prefetch, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
