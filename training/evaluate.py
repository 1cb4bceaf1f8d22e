"""Evaluate bicubic, LIIF and DDIR (any checkpoints) by PSNR-Y and SSIM, as the paper does.

Datasets, any number in one run:
  --pairs DIR        real pairs: DIR/LR and DIR/HR, files paired by name (identical stems, or
                     stems that differ by a suffix such as _LR4 / _HR / _x2); the scale is
                     --scale or inferred from the sizes.
  --city100 DIR      City100 scenes at their real scale: LR = L area-downsampled by
                     --city100-scale (2.4), HR = H. Default scenes: the validation split.
  --synthetic DIR    HR images, LR made with the synthetic real-camera degradation at each of
                     --scales, seeded per image and scale.

Alignment. The SR image is rendered at exactly the HR image's size with the pair's scale s: output
pixel j shows the LR point (j + 0.5) / s, the same point the HR pixel j shows. When round(h * s)
differs from the HR size (an LR of round(H / s) pixels covers H +- s/2 HR pixels), the rendered
grid simply stops at, or runs up to s/2 pixels past, the LR's bottom and right edges: no resize,
no shift, and those pixels lie inside the border shave (2 at x2, 3 at x3, 4 at x4 >= s/2). A
larger difference means the scale is wrong and is an error, never a silent comparison.

Tones (`training.tone`). On a pair a row's tones are judged against the truth: the zoom may not
move further from the HR's low-pass than the LR input was, by more than the tolerance
(`tone.truth_check`; the degradation itself moves the LR's low-pass). `--tone DIR` checks a
user's case, a photo with no truth, against the photo itself.

Example:
  python -m training.evaluate --city100 ../shared/data/city100_iphonex \\
      --synthetic ../shared/data/benchmarks/set14 --scales 1.5,2.3,3,3.7 \\
      --model DDIR=resources/weights/ddir_paper.safetensors \\
      --model LIIF=resources/weights/liif_official.safetensors --json results.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ddir_zoom.imaging.io import load_photo, write_text_atomic
from ddir_zoom.imaging.resample import resample_region, resize
from ddir_zoom.models import load_checkpoint, pick_device
from ddir_zoom.models.base import ImplicitSR
from ddir_zoom.models.precision import PRECISIONS
from ddir_zoom.models.precision import resolve as resolve_precision
from ddir_zoom.models.upscale import upscale_image
from ddir_zoom.threads import configure
from training.data import CITY100_EFFECTIVE_SCALE, CITY100_VALIDATION, list_images, load_city100
from training.degradation import degrade
from training.metrics import psnr_y, shave_for_scale, ssim_y
from training.tone import (
    shrink_back,
    shrunk_error,
    tone_error,
    truth_check,
    truth_on_photo_grid,
    worst,
)

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
# A trailing LR/HR tag with an optional scale (_LR4, _HR, -lr_x2, _LRx2dot5) or a bare scale (x4).
_PAIR_SUFFIX = re.compile(
    r"(?:[_\-.]?(?:lr|hr)(?:[_\-]?x?\d+(?:dot\d+|\.\d+)?)?|[_\-.]?x\d+(?:dot\d+|\.\d+)?)$",
    re.IGNORECASE)


@dataclass
class Pair:
    name: str
    lr: np.ndarray
    hr: np.ndarray
    scale: tuple[float, float]


Method = Callable[[np.ndarray, tuple[float, float], tuple[int, int]], np.ndarray]


def bicubic_method(lr: np.ndarray, scale: tuple[float, float], out_shape: tuple[int, int]
                   ) -> np.ndarray:
    return np.clip(resample_region(lr, scale, (0, 0), out_shape, "bicubic"), 0.0, 1.0)


def model_method(model: ImplicitSR) -> Method:
    def run(lr: np.ndarray, scale: tuple[float, float], out_shape: tuple[int, int]) -> np.ndarray:
        return upscale_image(model, lr, scale, out_shape)
    return run


def check_alignment(pair: Pair) -> None:
    """Refuse a pair whose HR size is further from lr size * scale than rounding explains:
    more than max(1, s / 2) pixels (see the module doc)."""
    for axis in (0, 1):
        s = pair.scale[axis]
        expected = pair.lr.shape[axis] * s
        if abs(pair.hr.shape[axis] - expected) > max(1.0, s / 2) + 1e-6:
            raise ValueError(
                f"{pair.name}: HR size {pair.hr.shape[:2]} does not match LR size "
                f"{pair.lr.shape[:2]} x {pair.scale} (more than rounding allows): wrong scale?")


def stem_key(stem: str) -> str:
    """A name with its LR/HR/scale suffix removed: 'img_001_LR4' and 'img_001_HR' -> 'img_001'."""
    return (_PAIR_SUFFIX.sub("", stem) or stem).lower()


def pair_by_name(lr_files: Iterable[Path], hr_files: Iterable[Path]
                 ) -> tuple[list[tuple[Path, Path]], list[Path]]:
    """(pairs, unpaired files). Identical stems pair first; otherwise stems that are equal once
    an LR/HR/scale suffix is removed."""
    lr_files, hr_files = list(lr_files), list(hr_files)
    pairs, unpaired = [], []
    hr_by_stem = {p.stem: p for p in hr_files}
    hr_by_key: dict[str, list[Path]] = {}
    for p in hr_files:
        hr_by_key.setdefault(stem_key(p.stem), []).append(p)
    used = set()
    for lr in lr_files:
        hr = hr_by_stem.get(lr.stem)
        if hr is None or hr in used:
            candidates = [p for p in hr_by_key.get(stem_key(lr.stem), []) if p not in used]
            hr = candidates[0] if len(candidates) == 1 else None
        if hr is None:
            unpaired.append(lr)
        else:
            used.add(hr)
            pairs.append((lr, hr))
    unpaired += [p for p in hr_files if p not in used]
    return pairs, unpaired


def infer_scale(lr_shape: tuple[int, ...], hr_shape: tuple[int, ...], name: str) -> float:
    """The scale of a registered pair from its sizes; both axes must agree within rounding."""
    sy, sx = hr_shape[0] / lr_shape[0], hr_shape[1] / lr_shape[1]
    scale = round((hr_shape[0] + hr_shape[1]) / (lr_shape[0] + lr_shape[1]), 3)
    tolerance = max(1.0, scale / 2)
    if (abs(lr_shape[0] * scale - hr_shape[0]) > tolerance
            or abs(lr_shape[1] * scale - hr_shape[1]) > tolerance):
        raise ValueError(f"{name}: cannot infer one scale from sizes {lr_shape[:2]} -> "
                         f"{hr_shape[:2]} (x{sy:.3f} vertically, x{sx:.3f} horizontally)")
    return scale


def real_pairs(folder: str | Path, scale: float | None = None) -> tuple[list[Pair], list[Path]]:
    folder = Path(folder)
    matched, unpaired = pair_by_name(list_images(folder / "LR"), list_images(folder / "HR"))
    pairs = []
    for lr_path, hr_path in matched:
        lr, hr = load_photo(lr_path).rgb, load_photo(hr_path).rgb
        s = scale if scale is not None else infer_scale(lr.shape, hr.shape, lr_path.name)
        pair = Pair(lr_path.stem, lr, hr, (s, s))
        check_alignment(pair)
        pairs.append(pair)
    return pairs, unpaired


def city100_pairs(folder: str | Path, scenes: Iterable[str] = CITY100_VALIDATION,
                  scale: float = CITY100_EFFECTIVE_SCALE) -> list[Pair]:
    """City100 scenes at their real scale: LR is L area-downsampled by `scale`, HR is H with
    its tones aligned to L's (`training.data.align_tones`)."""
    scenes = list(scenes)
    pairs = []
    for scene, (wide, tele) in zip(scenes, load_city100(folder, scenes), strict=True):
        wide = wide.astype(np.float32) / 255.0
        tele = tele.astype(np.float32) / 255.0
        lr = resize(wide, scale=1.0 / scale, method="area")
        pair = Pair(scene, lr, tele, (scale, scale))
        check_alignment(pair)
        pairs.append(pair)
    return pairs


def seeded_rng(seed: int, name: str, scale: float) -> np.random.Generator:
    """The random stream of one image's degradation at one scale: every run, every method and
    every machine sees the same LR."""
    digest = hashlib.sha256(f"{seed}:{name}:{scale}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def centre_crop(rgb: np.ndarray, size: int) -> np.ndarray:
    """The centred `size` x `size` pixels of an image (all of a side shorter than that)."""
    top, left = max(0, (rgb.shape[0] - size) // 2), max(0, (rgb.shape[1] - size) // 2)
    return np.ascontiguousarray(rgb[top:top + size, left:left + size])


def synthetic_pairs(folder: str | Path, scale: float, seed: int = 0,
                    limit: int | None = None) -> list[Pair]:
    """HR images of `folder` with the synthetic degradation at `scale`; each image's draw is
    seeded by (seed, file name, scale), so every run and every method sees the same LR."""
    pairs = []
    for path in list_images(folder)[:limit]:
        hr = load_photo(path).rgb
        lr, _ = degrade(hr, scale, seeded_rng(seed, path.name, scale))
        pair = Pair(path.stem, lr, hr, (scale, scale))
        check_alignment(pair)
        pairs.append(pair)
    return pairs


def score(pairs: list[Pair], methods: dict[str, Method]) -> dict[str, dict]:
    """Mean PSNR-Y and SSIM of each method over `pairs` (all at one scale), each image's PSNR-Y,
    its worst tone error against the LR input, and against the truth (`training.tone`): on a
    pair the scene's tones are the HR's, and `tone_ok` says the zoom moved no further from them
    than the LR was (`tone.truth_check`; the LR's own low-pass is off by the degradation)."""
    results: dict[str, dict[str, list]] = {m: {"psnr": [], "ssim": [], "tone": [], "truth": []}
                                           for m in methods}
    names: list[str] = []
    for pair in pairs:  # unique keys for the per-image scores ('a' twice: 'a', 'a#2')
        name, n = pair.name, 1
        while name in names:
            n += 1
            name = f"{pair.name}#{n}"
        names.append(name)
    for pair in pairs:
        shave = shave_for_scale(max(pair.scale))
        # The truth and the LR's own distance from it are the pair's, whatever the method.
        truth = truth_on_photo_grid(pair.hr, pair.lr.shape, pair.scale)
        lr_from_truth = tone_error(pair.lr, truth, 1.0)
        for name, method in methods.items():
            sr = method(pair.lr, pair.scale, pair.hr.shape[:2])
            results[name]["psnr"].append(psnr_y(sr, pair.hr, shave))
            results[name]["ssim"].append(ssim_y(sr, pair.hr, shave))
            back = shrink_back(sr, pair.lr.shape, pair.scale)  # once, for both references
            results[name]["tone"].append(shrunk_error(back, pair.lr))
            results[name]["truth"].append((shrunk_error(back, truth), lr_from_truth))
    table = {}
    for m, r in results.items():
        tone, truth = worst(r["tone"]), truth_check(r["truth"])
        table[m] = {"psnr": float(np.mean(r["psnr"])), "ssim": float(np.mean(r["ssim"])),
                    "images": len(r["psnr"]),
                    # Per image, so that a report can say on how many images a model beats
                    # bicubic, not only on average.
                    "per_image_psnr": dict(zip(names, map(float, r["psnr"]), strict=True)),
                    # Against the LR input, for the record: the degradation moves it too.
                    "tone_mad_255": tone.mad_255,
                    "tone_gain_error": tone.gain_error, "tone_contrast_255": tone.contrast_255,
                    # Against the truth, the check: the photo's own distance is the baseline.
                    "truth_tone_mad_255": truth.zoom.mad_255,
                    "truth_tone_contrast_255": truth.zoom.contrast_255,
                    "lr_truth_tone_mad_255": truth.photo.mad_255,
                    "lr_truth_tone_contrast_255": truth.photo.contrast_255,
                    "truth_tone_excess_mad_255": truth.excess_mad_255,
                    "truth_tone_excess_contrast_255": truth.excess_contrast_255,
                    "tone_ok": truth.ok()}
    return table


def tone_check(folder: str | Path, methods: dict[str, Method], scales: list[float],
               crop: int = 96, limit: int | None = None) -> dict[str, dict]:
    """Worst tone error of each method on the photos of `folder` (a centred crop of `crop`
    pixels each, as the user's own photo, not degraded) zoomed by each of `scales`."""
    errors: dict[str, list] = {m: [] for m in methods}
    for path in list_images(folder)[:limit]:
        photo = centre_crop(load_photo(path).rgb, crop)
        for s in scales:
            shape = (round(photo.shape[0] * s), round(photo.shape[1] * s))
            for name, method in methods.items():
                errors[name].append(tone_error(method(photo, (s, s), shape), photo, s))
    table = {}
    for m, e in errors.items():
        tone = worst(e)
        table[m] = {"images": len(e) // max(1, len(scales)), "scales": scales,
                    "tone_mad_255": tone.mad_255, "tone_gain_error": tone.gain_error,
                    "tone_contrast_255": tone.contrast_255,
                    "tone_mean_diff_255": tone.mean_diff_255, "tone_ok": tone.ok()}
    return table


def load_models(specs: list[str], device: torch.device, precision: str = "float32"
                ) -> tuple[dict[str, Method], dict[str, dict]]:
    """Each `--model NAME=FILE` as a method, and its record (file, architecture, precision)
    for the JSON report."""
    methods: dict[str, Method] = {}
    models: dict[str, dict] = {}
    precision, message = resolve_precision(precision, device)
    if message and specs:
        print(f"warning: {message}", file=sys.stderr)
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep:
            raise SystemExit(f"--model takes NAME=FILE, got {spec!r}")
        model, _ = load_checkpoint(path, device)
        model.set_precision(precision)
        models[name] = {"file": path, "config": model.config, "precision": precision}
        methods[name] = model_method(model)
    return methods, models


def format_table(title: str, table: dict[str, dict]) -> str:
    """Worst tone MAD / contrast change in levels, against the LR input and against the truth
    (the LR's own in brackets); "tone" is the check against the truth (`score`)."""
    lines = [f"## {title}",
             "| method | PSNR-Y (dB) | SSIM | images | tone vs LR (levels) | tone vs truth "
             "(levels; the LR's own) | tone |",
             "|---|---|---|---|---|---|---|"]
    for method, r in table.items():
        lines.append(f"| {method} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['images']} | "
                     f"{r['tone_mad_255']:.2f} / {r['tone_contrast_255']:.2f} | "
                     f"{r['truth_tone_mad_255']:.2f} / {r['truth_tone_contrast_255']:.2f} "
                     f"({r['lr_truth_tone_mad_255']:.2f} / "
                     f"{r['lr_truth_tone_contrast_255']:.2f}) | "
                     f"{'ok' if r['tone_ok'] else 'SHIFTED'} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m training.evaluate", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", default=[], metavar="NAME=FILE",
                        help="a checkpoint to evaluate under NAME (repeatable)")
    parser.add_argument("--no-bicubic", action="store_true", help="leave out the bicubic row")
    parser.add_argument("--pairs", action="append", default=[], metavar="DIR",
                        help="folder with LR/ and HR/ subfolders of real pairs")
    parser.add_argument("--scale", type=float, help="scale of --pairs (default: from sizes)")
    parser.add_argument("--city100", metavar="DIR", help="City100 folder (NNNH/NNNL images)")
    parser.add_argument("--city100-scenes", default=",".join(CITY100_VALIDATION))
    parser.add_argument("--city100-scale", type=float, default=CITY100_EFFECTIVE_SCALE)
    parser.add_argument("--synthetic", action="append", default=[], metavar="DIR",
                        help="folder of HR images to degrade synthetically")
    parser.add_argument("--scales", default="1.5,2.3,3,3.7",
                        help="scales for --synthetic, comma-separated")
    parser.add_argument("--tone", action="append", default=[], metavar="DIR",
                        help="photos to zoom by each of --tone-scales for the tone check alone "
                        "(a centred 96-pixel crop of each)")
    parser.add_argument("--tone-scales", default="1.5,3,5,8")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic degradation")
    parser.add_argument("--limit", type=int, help="use only the first N images of a folder")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", choices=PRECISIONS, default="float32",
                        help="decoding precision of the models (models.precision)")
    parser.add_argument("--threads", type=int, default=0,
                        help="CPU threads (0: torch's default); 1 beside a training run")
    parser.add_argument("--json", metavar="FILE", help="write all results as JSON")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        configure(args.threads)
    device = pick_device(args.device)
    methods: dict[str, Method] = {} if args.no_bicubic else {"bicubic": bicubic_method}
    model_methods, models = load_models(args.model, device, args.precision)
    methods.update(model_methods)
    if not (args.pairs or args.city100 or args.synthetic or args.tone):
        raise SystemExit("nothing to evaluate: give --pairs, --city100, --synthetic or --tone")

    datasets: list[tuple[str, float, list[Pair]]] = []
    for folder in args.pairs:
        pairs, unpaired = real_pairs(folder, args.scale)
        for path in unpaired:
            print(f"warning: {path} has no partner and is skipped", file=sys.stderr)
        by_scale: dict[float, list[Pair]] = {}
        for pair in pairs:
            by_scale.setdefault(pair.scale[0], []).append(pair)
        datasets += [(f"{Path(folder).name}", s, p) for s, p in sorted(by_scale.items())]
    if args.city100:
        scenes = [s.strip() for s in args.city100_scenes.split(",") if s.strip()]
        datasets.append(("City100 iPhone X (real)", args.city100_scale,
                         city100_pairs(args.city100, scenes, args.city100_scale)))
    scales = [float(s) for s in args.scales.split(",") if s.strip()]
    for folder in args.synthetic:
        for s in scales:
            datasets.append((f"{Path(folder).name} (synthetic)", s,
                             synthetic_pairs(folder, s, args.seed, args.limit)))

    report = {"device": str(device), "models": models, "seed": args.seed, "results": []}
    for title, s, pairs in datasets:
        start = time.perf_counter()
        table = score(pairs, methods)
        heading = f"{title} x{s:g}"
        print(format_table(heading, table))
        print(f"({time.perf_counter() - start:.0f} s)\n", flush=True)
        report["results"].append({"dataset": title, "scale": s, "table": table})
    report["tone"] = []
    tone_scales = [float(s) for s in args.tone_scales.split(",") if s.strip()]
    for folder in args.tone:
        table = tone_check(folder, methods, tone_scales, limit=args.limit)
        print(f"## tone check: {folder}, x{', x'.join(f'{s:g}' for s in tone_scales)}")
        for m, r in table.items():
            print(f"- {m}: worst MAD {r['tone_mad_255']:.2f} levels, worst contrast change "
                  f"{r['tone_contrast_255']:.2f} levels: {'ok' if r['tone_ok'] else 'SHIFTED'}")
        report["tone"].append({"folder": str(folder), "table": table})
    if args.json:
        write_text_atomic(args.json, json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    sys.exit(main())
