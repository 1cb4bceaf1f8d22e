"""Viewport rendering speed and memory, through the same engine the viewer uses.

For a 1280x800 viewport at x1.5, x2.5 and x4 and each method: the time `request` takes to
return the immediate frame during a zoom drag (20 requests 1% apart, as fast as they return,
while the worker refines behind them: median and worst), the time to the first refined tile and
to the fully refined view with a cold feature cache (a freshly opened photo) and a warm one
(features cached, refined tiles not: the same place after a zoom step), and a revisit (every
tile cached). Also: a 24-megapixel JPEG from open to first frame, the appearance
embedding's one-off cost, and the peak resident memory of a process viewing that photo.

    python benchmarks/viewport.py --presets paper --models ddir,student,liif   # as shipped
    python benchmarks/viewport.py --presets paper --models ddir --precision bfloat16
    python benchmarks/viewport.py --presets compact,paper --device cuda
    python benchmarks/viewport.py --presets paper --models ddir --scales 2.5 --load 2
    python benchmarks/viewport.py --presets paper --models student --repeats 5   # medians

A shipped model with a first pass (the paper-size DDIR and its distilled student) is measured as
the viewer shows it: "first pass" is when the student's tiles cover the view, "full" when the
paper-size model's have replaced them. `student` adds the student alone as a method. With
`--repeats`, such a method's warm first pass is repeated on its own (`time_first_pass`) and
reported as the median of the runs, as the views that take seconds are.

Every time is also given in GFLOP-equivalents: seconds x the machine's fp32 matmul throughput
measured in the same run (`decode.matmul_gflops`), a cost that compares across noisy machines.
`--load N` also refines one warm view with N competing CPU-bound processes (single-threaded
matrix products, as other programs would be) and reports its slowdown against the idle run.

The photo is a 6000x4000 JPEG made from the bundled sample (written to a temporary folder). When
resources/weights holds no model of a preset, random weights stand in: speed does not depend on
the weights. Targets on the 2-core CPU: immediate frame <= 16 ms median and <= 33 ms worst,
first refined tile <= 0.3 s, a view fully refined <= 1.5 s warm and <= 3 s cold, peak memory
<= 2 GiB, and at most 3x slower beside a competing load.
"""

from __future__ import annotations

import ddir_zoom  # noqa: F401  (the viewer's thread policy, set before torch loads)

# isort: split

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ddir_zoom.engine import Engine, View
from ddir_zoom.engine.progressive import ProgressiveRenderer
from ddir_zoom.imaging import load_photo, resize
from ddir_zoom.imaging.io import write_text_atomic
from ddir_zoom.models import make_preset, preset_config, read_header
from ddir_zoom.resources import bundled_first_pass, bundled_weights, sample_photo

VIEWPORT = (800, 1280)
ENGINE_OPTIONS: dict = {}  # --precision, for every engine the viewport measures open


def make_big_jpeg(path: Path, size: tuple[int, int] = (4000, 6000)) -> Path:
    """A 24 MP photo-like JPEG: the sample photo enlarged, with fine grain."""
    sample = load_photo(sample_photo()).rgb
    big = resize(sample, size=size)
    rng = np.random.default_rng(0)
    big += rng.normal(0, 0.02, big.shape).astype(np.float32)
    Image.fromarray((np.clip(big, 0, 1) * 255 + 0.5).astype(np.uint8)).save(path, quality=92)
    return path


def make_big_dng(path: Path, size: tuple[int, int] = (4000, 6000)) -> Path:
    """A 24 MP camera RAW (DNG) of the same picture: an RGGB mosaic of its linear light at
    12 bits, with a 1500 x 1000 preview embedded as cameras do (written with tifffile)."""
    import tifffile

    sample = load_photo(sample_photo()).rgb
    big = np.clip(resize(sample, size=size), 0, 1)
    linear = np.where(big <= 0.04045, big / 12.92, ((big + 0.055) / 1.055) ** 2.4)
    neutral = np.array([0.5, 1.0, 0.7], np.float32)
    cam = linear * neutral
    mosaic = np.empty(size, np.float32)
    mosaic[0::2, 0::2] = cam[0::2, 0::2, 0]
    mosaic[0::2, 1::2] = cam[0::2, 1::2, 1]
    mosaic[1::2, 0::2] = cam[1::2, 0::2, 1]
    mosaic[1::2, 1::2] = cam[1::2, 1::2, 2]
    preview = (np.clip(resize(sample, size=(size[0] // 4, size[1] // 4)), 0, 1) * 255 + 0.5)

    def rationals(values):
        return [v for x in values for v in (round(float(x) * 10000), 10000)]

    # DNG's ColorMatrix1 maps XYZ to the camera's channels: here linear sRGB scaled by the
    # camera's per-channel response, so that developing gives the picture's colours back.
    xyz_to_srgb = np.array([[3.2406, -1.5372, -0.4986], [-0.9689, 1.8758, 0.0415],
                            [0.0557, -0.2040, 1.0570]])
    colour_matrix = (neutral[:, None] * xyz_to_srgb).ravel()
    with tifffile.TiffWriter(path) as tif:
        tif.write(preview.astype(np.uint8), photometric="rgb", subfiletype=1, subifds=1,
                  extratags=[(50706, "B", 4, (1, 4, 0, 0), False),
                             (50708, "s", 0, "ddir-zoom benchmark", False),
                             (50721, "2i", 9, rationals(colour_matrix), False),
                             (50778, "H", 1, 21, False),
                             (50728, "2I", 3, rationals(neutral), False)])
        tif.write(np.round(mosaic * 4095).astype(np.uint16), photometric=32803,
                  subfiletype=0, extratags=[(33421, "H", 2, (2, 2), False),
                                            (33422, "B", 4, (0, 1, 1, 2), False),
                                            (50717, "I", 1, 4095, False)])
    return path


def raw_first_frame(path: Path, device: str) -> dict:
    """What the viewer does with a RAW: its embedded preview to a first frame, then the
    developed image."""
    from ddir_zoom.imaging import Photo
    from ddir_zoom.imaging.io import unit_float
    from ddir_zoom.imaging.raw import raw_preview

    start = time.perf_counter()
    preview = raw_preview(path)
    engine = Engine(Photo(rgb=unit_float(preview), rgb8=preview), device=device)
    renderer = ProgressiveRenderer(engine, lambda u: None)
    renderer.request(View.fit(engine.size, VIEWPORT), "bicubic")
    first = time.perf_counter() - start
    renderer.close()
    start = time.perf_counter()
    load_photo(path)
    return {"raw_open_to_first_frame_s": first, "raw_develop_s": time.perf_counter() - start}


def jpeg_first_frame(path: Path, device: str) -> float:
    start = time.perf_counter()
    engine = Engine.open(path, device=device)
    renderer = ProgressiveRenderer(engine, lambda u: None)
    renderer.request(View.fit(engine.size, VIEWPORT), "bicubic")
    renderer.close()
    return time.perf_counter() - start


def first_frames(args: argparse.Namespace) -> int:
    """A 24 MP JPEG and a 24 MP RAW of the same picture, each opened three times: the time to
    the first frame (for the RAW, its embedded preview, as the viewer shows it), and the RAW's
    development."""
    with tempfile.TemporaryDirectory() as folder:
        jpeg = make_big_jpeg(Path(folder) / "big.jpg")
        dng = make_big_dng(Path(folder) / "big.dng")
        jpeg_s = [jpeg_first_frame(jpeg, args.device) for _ in range(3)]
        raws = [raw_first_frame(dng, args.device) for _ in range(3)]
    result = {"jpeg_open_to_first_frame_s": jpeg_s,
              "raw_open_to_first_frame_s": [r["raw_open_to_first_frame_s"] for r in raws],
              "raw_develop_s": [r["raw_develop_s"] for r in raws]}
    print(f"24 MP JPEG, open to first frame: best {min(jpeg_s):.2f} s of 3; 24 MP RAW (DNG), "
          f"open to first frame (embedded preview): best "
          f"{min(result['raw_open_to_first_frame_s']):.2f} s, developed in best "
          f"{min(result['raw_develop_s']):.2f} s")
    if args.json:
        write_text_atomic(args.json, json.dumps(result, indent=2))
    return 0


def add_models(engine: Engine, presets: list[str], models: list[str],
               first_pass: bool = True) -> dict[str, str]:
    """Add each model at each preset, with its shipped first pass as the viewer does (unless
    `first_pass` is False); returns name -> where its weights came from. The model 'student'
    is the shipped first pass of DDIR on its own."""
    origin = {}
    if "student" in models and bundled_first_pass("ddir") is not None:
        engine.add_model("ddir-student", bundled_first_pass("ddir"))
        origin["ddir-student"] = str(bundled_first_pass("ddir"))
        models = [m for m in models if m != "student"]
    for preset in presets:
        for model in models:
            name = f"{model}-{preset}"
            weights = bundled_weights(model)
            shipped = weights.exists() and read_header(weights)[0] == preset_config(model, preset)
            if shipped:
                fast = bundled_first_pass(model) if first_pass else None
                engine.add_model(name, weights, first_pass=fast)
                origin[name] = str(weights) + (f", first pass {fast}" if fast else "")
            else:
                torch.manual_seed(0)
                engine.add_model(name, make_preset(model, preset))
                origin[name] = "random weights"
    return origin


REPEAT_UNDER_S = 20.0
"""`--repeats` repeats a method's cold and warm views only while a cold view takes under this:
a paper-size model's minutes-long views vary far less, relatively, than this machine's noise
moves a one-second view."""


def median_run(runs: list[dict]) -> dict:
    """The run with the median full time (the lower middle one of an even count)."""
    ordered = sorted(runs, key=lambda r: r["first_pass_s"] if r["first_pass_s"] is not None
                     else r["full_s"])
    return ordered[(len(ordered) - 1) // 2]


def time_view(renderer: ProgressiveRenderer, view: View, method: str,
              first_pass_only: bool = False) -> dict:
    """Times of one view; `first_pass_only`: return once the first pass covers it."""
    first = {"count": 0}
    done = threading.Event()
    state = {"generation": None, "total": None}

    def on_tile(update) -> None:
        if update.generation == state["generation"]:
            first.setdefault("t", time.perf_counter())
            if not update.final:  # a first pass: the view is sharp when its last tile is in
                first["first_pass"] = time.perf_counter()
                first["count"] += 1
                if first_pass_only and first["count"] == state["total"]:
                    done.set()

    def on_finished(generation) -> None:
        if generation == state["generation"]:
            done.set()

    renderer.on_tile, renderer.on_finished = on_tile, on_finished
    start = time.perf_counter()
    frame = renderer.request(view, method)
    immediate = time.perf_counter() - start
    state["generation"], state["total"] = frame.generation, frame.total
    if not frame.pending:
        done.set()
    done.wait(3600)
    end = time.perf_counter()
    return {"immediate_ms": 1000 * immediate,
            "first_tile_s": (first.get("t", end) - start), "full_s": end - start,
            "first_pass_s": first["first_pass"] - start if "first_pass" in first else None,
            "tiles": frame.total}


def time_first_pass(engine: Engine, view: View, method: str) -> float:
    """A warm view's first pass again, alone: a fresh renderer (no refined tiles), closed once
    the first pass covers the view (the method's own tiles dropped)."""
    renderer = ProgressiveRenderer(engine, lambda u: None)
    try:
        return time_view(renderer, view, method, first_pass_only=True)["first_pass_s"]
    finally:
        renderer.close()


def load_slowdown(engine: Engine, method: str, view: View, load: int) -> dict:
    """A warm full refine of `view` idle, then beside `load` busy processes; the ratio."""
    from competing_load import competing_load

    renderer = ProgressiveRenderer(engine, lambda u: None)
    try:
        time_view(renderer, view, method)  # encode the features: both runs are warm
        renderer.tiles.clear()
        idle = time_view(renderer, view, method)["full_s"]
        renderer.tiles.clear()
        with competing_load(load):
            loaded = time_view(renderer, view, method)["full_s"]
    finally:
        renderer.close()
    return {"method": method, "scale": view.scale, "load": load, "idle_s": idle,
            "loaded_s": loaded, "slowdown": loaded / idle}


def drag_frames(renderer: ProgressiveRenderer, view: View, method: str) -> list[float]:
    """Immediate-frame times (ms) of a zoom drag: 20 requests, each 1% further in."""
    times = []
    for step in range(20):
        start = time.perf_counter()
        renderer.request(view.zoomed(view.scale * 1.01 ** step), method)
        times.append(1000 * (time.perf_counter() - start))
    renderer.cancel()
    return times


def viewport_table(photo_path: Path, presets: list[str], models: list[str], scales: list[float],
                   device: str, repeats: int = 1) -> dict:
    results = []
    engine = Engine.open(photo_path, device=device, **ENGINE_OPTIONS)
    origin = add_models(engine, presets, models)
    centre = (engine.size[0] / 2, engine.size[1] / 2)
    embedding = {}
    # Once per photo, as the viewer does it while the photo is shown whole (first passes too).
    for name, method in {**engine.methods, **engine.first_passes}.items():
        if name == "bicubic":
            continue
        start = time.perf_counter()
        method.prepare()
        embedding[name] = time.perf_counter() - start
    for scale in scales:
        view = View.centred(scale, centre, VIEWPORT)
        for name in engine.methods:
            engine.clear_caches()
            renderer = ProgressiveRenderer(engine, lambda u: None)
            try:
                drag = drag_frames(renderer, view, name)
            finally:
                renderer.close()
            colds, warms = [], []
            while True:
                engine.clear_caches()
                renderer = ProgressiveRenderer(engine, lambda u: None)
                try:
                    colds.append(time_view(renderer, view, name))
                    renderer.tiles.clear()  # keep the features, drop the refined tiles
                    warms.append(time_view(renderer, view, name))
                    again = time_view(renderer, view, name)  # everything cached: a revisit
                finally:
                    renderer.close()
                # Repeated where a run is short enough for this machine's noise to matter.
                if len(colds) >= repeats or colds[-1]["full_s"] > REPEAT_UNDER_S:
                    break
            cold, warm = median_run(colds), median_run(warms)
            warm_first = [w["first_pass_s"] for w in warms]
            if warm["first_pass_s"] is not None:
                # A view whose own refinement takes minutes is not repeated, but its first
                # pass (what the viewer shows within seconds) is, on its own.
                warm_first += [time_first_pass(engine, view, name)
                               for _ in range(repeats - len(warms))]
            row = {"method": name, "scale": scale, "cold": cold, "warm": warm,
                   "revisit_ms": again["immediate_ms"], "drag_ms": drag,
                   "runs": {"cold_full_s": [c["full_s"] for c in colds],
                            "warm_full_s": [w["full_s"] for w in warms],
                            "cold_first_pass_s": [c["first_pass_s"] for c in colds],
                            "warm_first_pass_s": warm_first}}
            if len(warm_first) > len(warms):
                warm["first_pass_median_s"] = statistics.median_low(warm_first)
            results.append(row)

            def full(t: dict, values: list[float]) -> str:
                """The median run's time (first pass, and full), the range of the runs."""
                spread = f" [{min(values):.2f}-{max(values):.2f}]" if len(values) > 1 else ""
                if t["first_pass_s"] is None:
                    return f"{t['full_s']:.2f}{spread}"
                first = t.get("first_pass_median_s", t["first_pass_s"])
                return f"{first:.2f}{spread} (first pass), {t['full_s']:.2f}"

            first_pass = warm["first_pass_s"] is not None
            cold_values = [c["first_pass_s" if first_pass else "full_s"] for c in colds]
            warm_values = warm_first if first_pass else [w["full_s"] for w in warms]
            print(f"| {name} | x{scale:g} | {np.median(drag):.1f} / {max(drag):.1f} | "
                  f"{cold['first_tile_s']:.2f} | {full(cold, cold_values)} | "
                  f"{warm['first_tile_s']:.2f} | {full(warm, warm_values)} | "
                  f"{again['immediate_ms']:.1f} |", flush=True)
    return {"rows": results, "weights": origin, "embedding_s": embedding}


def open_and_view(photo_path: str, device: str, presets: list[str], models: list[str]) -> None:
    """Child process: open the 24 MP photo, show a first frame, refine views at fit, x1.5 and
    x4 with every model; print timings and the peak resident memory as JSON."""
    start = time.perf_counter()
    engine = Engine.open(photo_path, device=device, **ENGINE_OPTIONS)
    renderer = ProgressiveRenderer(engine, lambda u: None)
    fit = View.fit(engine.size, VIEWPORT)
    renderer.request(fit, "bicubic")
    first_frame = time.perf_counter() - start
    renderer.close()
    add_models(engine, presets, models)
    for name in engine.methods:
        for scale in (fit.scale, 1.5, 4.0):
            renderer = ProgressiveRenderer(engine, lambda u: None)
            try:
                time_view(renderer, View.centred(scale, (2000, 3000), VIEWPORT), name)
            finally:
                renderer.close()
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    held = memory_now_mib()
    print(json.dumps({"open_to_first_frame_s": first_frame, "peak_rss_mib": peak_kib / 1024,
                      "held_rss_mib": held,
                      "cache_mib": sum(cache.bytes for cache in engine.caches) / 2**20}))


def memory_now_mib() -> float | None:
    """Resident memory of this process now (Linux), MiB."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return None


def memory_child(photo: Path, args: argparse.Namespace, env: dict | None = None) -> dict:
    child = subprocess.run(
        [sys.executable, __file__, "--child", str(photo), "--device", args.device,
         "--presets", args.presets, "--models", args.models, "--precision", args.precision],
        capture_output=True, text=True, check=True, env=env)
    return json.loads(child.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--presets", default="compact")
    parser.add_argument("--models", default="liif,ddir")
    parser.add_argument("--scales", default="1.5,2.5,4")
    parser.add_argument("--load", type=int, default=0,
                        help="also measure the slowdown of a warm refine beside N busy processes")
    parser.add_argument("--repeats", type=int, default=1,
                        help="cold and warm views of each method this many times, the median "
                        f"reported with the range in brackets (views under {REPEAT_UNDER_S:g} s"
                        " cold only; a first pass always)")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--first-frames", action="store_true",
                        help="only the 24 MP JPEG and 24 MP RAW (DNG) open-to-first-frame times")
    parser.add_argument("--precision", default="float32", choices=("float32", "bfloat16"),
                        help="decoding precision of the models (models.precision)")
    parser.add_argument("--compare-allocator", action="store_true",
                        help="also measure memory without trimming the heap (memory.release)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    presets, models = args.presets.split(","), args.models.split(",")
    ENGINE_OPTIONS["precision"] = args.precision
    if args.child:
        open_and_view(args.child, args.device, presets, models)
        return 0

    if args.first_frames:
        return first_frames(args)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from decode import matmul_gflops  # the same measure as the decoding benchmark

    peak = matmul_gflops(torch.device("cpu" if args.device == "auto" and not
                                      torch.cuda.is_available() else
                                      ("cuda" if args.device == "auto" else args.device)), 5)
    with tempfile.TemporaryDirectory() as folder:
        photo = make_big_jpeg(Path(folder) / "big.jpg")
        print(f"device {args.device}, {torch.get_num_threads()} threads; fp32 matmul "
              f"{peak:.0f} GFLOP/s (GFLOP-equivalent = seconds x that); 24 MP JPEG "
              f"{photo.stat().st_size / 1e6:.1f} MB; viewport {VIEWPORT[1]}x{VIEWPORT[0]}\n")
        print("| method | scale | immediate frame in a drag, median / worst (ms) | "
              "first tile, cold (s) | full, cold (s) | first tile, warm (s) | full, warm (s) | "
              "revisit (ms) |")
        print("|---|---|---|---|---|---|---|---|")
        table = viewport_table(photo, presets, models,
                               [float(s) for s in args.scales.split(",")], args.device,
                               max(1, args.repeats))
        print()
        for name, seconds in table["embedding_s"].items():
            print(f"appearance embedding of the 24 MP photo, {name}: {seconds:.2f} s "
                  f"(once per photo)")
        memory = memory_child(photo, args)
        print(f"24 MP JPEG, open to first frame: {memory['open_to_first_frame_s']:.2f} s; "
              f"peak resident memory while viewing it with every method: "
              f"{memory['peak_rss_mib']:.0f} MiB, {memory['held_rss_mib']:.0f} MiB held at "
              f"the end ({memory['cache_mib']:.0f} MiB of it cached features and projections)")
        if args.compare_allocator:
            default = memory_child(photo, args, {**os.environ, "DDIR_ZOOM_MALLOC_TRIM": "0"})
            memory["without_trim"] = default
            print(f"the same without trimming the heap (DDIR_ZOOM_MALLOC_TRIM=0): "
                  f"peak {default['peak_rss_mib']:.0f} MiB, {default['held_rss_mib']:.0f} MiB "
                  f"held")
        raw = raw_first_frame(make_big_dng(Path(folder) / "big.dng"), args.device)
        memory.update(raw)
        print(f"24 MP RAW (DNG), open to first frame (its embedded preview): "
              f"{raw['raw_open_to_first_frame_s']:.2f} s; developed in "
              f"{raw['raw_develop_s']:.2f} s")
        print("\nfull refine, warm, in GFLOP-equivalents (seconds x matmul throughput):")
        for row in table["rows"]:
            row["warm"]["full_gflop_equivalent"] = row["warm"]["full_s"] * peak
            row["cold"]["full_gflop_equivalent"] = row["cold"]["full_s"] * peak
            print(f"- {row['method']} x{row['scale']:g}: warm "
                  f"{row['warm']['full_gflop_equivalent']:.0f}, cold "
                  f"{row['cold']['full_gflop_equivalent']:.0f}")
        loads = []
        if args.load:
            engine = Engine.open(photo, device=args.device, **ENGINE_OPTIONS)
            add_models(engine, presets, models)
            for scale in (float(s) for s in args.scales.split(",")):
                view = View.centred(scale, (engine.size[0] / 2, engine.size[1] / 2), VIEWPORT)
                for name in engine.methods:
                    loads.append(load_slowdown(engine, name, view, args.load))
                    r = loads[-1]
                    print(f"- {name} x{scale:g} beside {args.load} busy processes: "
                          f"{r['loaded_s']:.2f} s against {r['idle_s']:.2f} s idle: "
                          f"{r['slowdown']:.1f}x", flush=True)
    if args.json:
        write_text_atomic(args.json, json.dumps({**table, **memory, "device": args.device,
                                                 "precision": args.precision,
                                                 "matmul_gflops": peak, "load": loads},
                                                indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
