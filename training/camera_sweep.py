"""How the models fare on cameras unlike the one we have: fixed, named camera profiles.

The held-out real pairs come from cameras we do not have (issue 9). What we can do is ask, for
each kind of camera a user may own, whether DDIR still beats bicubic: each profile below is one
fixed degradation (lens blur, sensor noise, in-camera sharpening, JPEG), applied to the same HR
crops at each scale, and every method is scored on it. Some profiles lie outside the ranges the
synthetic training degradation draws from (`training.degradation.draw_params`): they say how the
models behave on a camera softer, noisier or more sharpened than any they were trained for.

The profiles come from what cameras do in general (a sharp prime shot in RAW, a soft zoom, a phone
that sharpens its JPEGs, high ISO), not from City100: this is a check for cameras we never saw.

    python -m training.camera_sweep --images ../shared/data/benchmarks/b100 --limit 20 \\
        --scales 2,4 --model DDIR=resources/weights/ddir_paper.safetensors \\
        --model LIIF=resources/weights/liif_official.safetensors \\
        --json benchmarks/results/camera_sweep.json

Prints, per profile and scale, each method's PSNR-Y and its gain over bicubic, and on how many
crops DDIR falls below bicubic. `--compare SHIPPED CANDIDATE` is the sweep's part of a shipping
decision (`compare`; `training.report compare` is the standard sets' part).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ddir_zoom.imaging.io import load_photo, write_text_atomic
from ddir_zoom.models import pick_device
from ddir_zoom.threads import configure
from training.data import list_images
from training.degradation import RANGES, DegradationParams, degrade
from training.evaluate import (
    DEFAULT_DATA,
    Method,
    Pair,
    bicubic_method,
    centre_crop,
    load_models,
    score,
    seeded_rng,
)

_CLEAN = DegradationParams(blur_sigma_major=0.0, blur_sigma_minor=0.0, blur_angle=0.0,
                           noise_shot=0.0, noise_read=0.0, sharpen_amount=0.0,
                           sharpen_radius=1.0, jpeg_quality=0)


def _blur(sigma: float, minor: float | None = None, angle: float = 0.0) -> dict:
    return {"blur_sigma_major": sigma, "blur_sigma_minor": sigma if minor is None else minor,
            "blur_angle": angle}


_ISO_LOW = {"noise_shot": 10 ** -4.0, "noise_read": 10 ** -5.5}
_ISO_HIGH = {"noise_shot": 10 ** -2.5, "noise_read": 10 ** -4.0}  # beyond the training range
_PHONE = {"sharpen_amount": 1.2, "sharpen_radius": 1.0, "jpeg_quality": 90}

# Blur sigmas are in LR pixels. Whether each lies inside the training ranges is computed
# (`RANGES.holds`), not claimed.
PROFILES: dict[str, DegradationParams] = {
    "ideal sampling (no blur or noise)": _CLEAN,
    "sharp prime (RAW)": replace(_CLEAN, **_blur(0.4)),
    "average lens (RAW)": replace(_CLEAN, **_blur(0.7), **_ISO_LOW),
    "soft zoom (RAW)": replace(_CLEAN, **_blur(1.1), **_ISO_LOW),
    "very soft lens (RAW)": replace(_CLEAN, **_blur(1.6), **_ISO_LOW),
    "astigmatic lens": replace(_CLEAN, **_blur(1.0, 0.35, 0.6), **_ISO_LOW),
    "high ISO": replace(_CLEAN, **_blur(0.7), **_ISO_HIGH),
    "camera JPEG": replace(_CLEAN, **_blur(0.7), **_ISO_LOW, sharpen_amount=0.5,
                           sharpen_radius=1.0, jpeg_quality=92),
    "phone: sharpened JPEG": replace(_CLEAN, **_blur(0.8), **_ISO_LOW, **_PHONE),
    "phone: heavy sharpening": replace(_CLEAN, **_blur(0.8), **_ISO_LOW,
                                       **{**_PHONE, "sharpen_amount": 3.0}),
    "low-quality JPEG": replace(_CLEAN, **_blur(0.7), **_ISO_LOW, jpeg_quality=55),
}


def load_crops(images: list[Path], crop: int) -> list[tuple[str, np.ndarray]]:
    """(name, centred HR crop) of each image, read once for every profile and scale."""
    return [(path.name, centre_crop(load_photo(path).rgb, crop)) for path in images]


def degrade_crops(crops: list[tuple[str, np.ndarray]], params: DegradationParams, scale: float,
                  seed: int = 0) -> list[Pair]:
    """Each crop degraded with `params` at `scale`; the noise is seeded by (seed, file name,
    scale), as `evaluate.synthetic_pairs` seeds its draws, so every method sees the same LR."""
    return [Pair(Path(name).stem, degrade(hr, scale, seeded_rng(seed, name, scale),
                                          params=params)[0], hr, (scale, scale))
            for name, hr in crops]


def profile_pairs(images: list[Path], params: DegradationParams, scale: float, crop: int,
                  seed: int = 0) -> list[Pair]:
    """A centred `crop` of each HR image (whole when smaller), degraded with `params` at
    `scale` (`degrade_crops`)."""
    return degrade_crops(load_crops(images, crop), params, scale, seed)


def sweep(images: list[Path], methods: dict[str, Method], scales: list[float], crop: int,
          profiles: dict[str, DegradationParams] = PROFILES, seed: int = 0,
          log=print) -> list[dict]:
    """One row per (profile, scale): each method's mean PSNR-Y, its gain over bicubic, and
    the number of crops on which it falls below bicubic."""
    rows = []
    crops = load_crops(images, crop)
    for name, params in profiles.items():
        for s in scales:
            start = time.perf_counter()
            table = score(degrade_crops(crops, params, s, seed), methods)
            base = table["bicubic"]
            row = {"profile": name, "inside_training_ranges": RANGES.holds(params), "scale": s,
                   "params": params.as_dict(), "methods": {}}
            for m, r in table.items():
                below = sum(r["per_image_psnr"][k] < base["per_image_psnr"][k]
                            for k in base["per_image_psnr"])
                row["methods"][m] = {"psnr": r["psnr"], "gain_db": r["psnr"] - base["psnr"],
                                     "images_below_bicubic": int(below), "images": r["images"],
                                     "worst_gain_db": min(r["per_image_psnr"][k]
                                                          - base["per_image_psnr"][k]
                                                          for k in base["per_image_psnr"])}
            rows.append(row)
            log(format_row(row) + f"  ({time.perf_counter() - start:.0f} s)")
    return rows


def format_row(row: dict) -> str:
    cells = [f"{m} {r['psnr']:.2f}" + ("" if m == "bicubic" else
                                        f" ({r['gain_db']:+.2f}, below on "
                                        f"{r['images_below_bicubic']}/{r['images']})")
             for m, r in row["methods"].items()]
    mark = "" if row["inside_training_ranges"] else " [outside training ranges]"
    return f"{row['profile']}{mark} x{row['scale']:g}: " + "; ".join(cells)


def markdown(rows: list[dict], methods: list[str]) -> str:
    """The README's table: per profile and scale, each method's gain over bicubic (dB), on how
    many crops it falls below bicubic and its least gain on one crop; * marks a profile
    outside the training ranges."""
    others = [m for m in methods if m != "bicubic"]
    lines = ["| camera profile | scale | bicubic PSNR-Y | " + " | ".join(
        f"{m}: gain (crops below bicubic; worst crop)" for m in others) + " |",
        "|---|---|---|" + "---|" * len(others)]
    for row in rows:
        r = row["methods"]
        name = row["profile"] + ("" if row["inside_training_ranges"] else " *")
        cells = [f"{r[m]['gain_db']:+.2f} ({r[m]['images_below_bicubic']}/{r[m]['images']}; "
                 f"{r[m]['worst_gain_db']:+.2f})" if m in r else "-" for m in others]
        lines.append(f"| {name} | x{row['scale']:g} | {r['bicubic']['psnr']:.2f} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def _same_crops(key: tuple[str, float], row: dict, other: dict) -> None:
    """Two sweeps' rows of one profile and scale compare only on the same crops and seed:
    then their bicubic figures agree (ValueError otherwise)."""
    if abs(row["methods"]["bicubic"]["psnr"] - other["methods"]["bicubic"]["psnr"]) > 1e-9:
        raise ValueError(f"{key}: the sweeps' bicubic figures differ: other crops, limit or "
                         "seed")


def merge(reports: list[dict]) -> tuple[list[dict], list[str]]:
    """Rows and methods of sweeps run apart (a new model beside the shipped ones); they must
    share their crops and seed, so that every bicubic figure agrees, and a method named in two
    of them must have the same figures in both (ValueError otherwise)."""
    rows: dict[tuple[str, float], dict] = {}
    methods: list[str] = []
    for report in reports:
        for m in report["methods"]:
            if m not in methods:
                methods.append(m)
        for row in report["rows"]:
            key = (row["profile"], row["scale"])
            if key not in rows:
                rows[key] = {**row, "methods": dict(row["methods"])}
                continue
            _same_crops(key, rows[key], row)
            for m, scores in row["methods"].items():
                known = rows[key]["methods"].get(m)
                if m != "bicubic" and known is not None and known != scores:
                    # Two sweeps of different files under one name (the shipped DDIR before and
                    # after a new one shipped): one column would silently hide the other.
                    raise ValueError(f"{key}: method {m!r} has different figures in two sweeps; "
                                     "score one of them under another name")
                rows[key]["methods"][m] = scores
    return list(rows.values()), methods


TOLERANCE_DB = 0.05
"""How much a candidate may lose on any profile and scale against the shipped DDIR and still
ship (`compare`): fixed before the first candidate was scored (a model that gains on soft
lenses must not pay for it on the sharp ones)."""


def compare(shipped: dict, candidate: dict, method: str = "DDIR",
            candidate_method: str | None = None, tolerance: float = TOLERANCE_DB
            ) -> tuple[str, bool]:
    """The sweep's part of a shipping decision: the candidate's PSNR-Y against the shipped
    model's on every profile and scale of the shipped sweep, on the same crops. (markdown,
    ship): ship only when it was measured on every row and loses no more than `tolerance` dB
    on any."""
    candidate_method = candidate_method or next(
        (m for m in candidate["methods"] if m != "bicubic"), method)
    # Looked up apart, not merged: the candidate may carry the shipped model's name (a sweep of
    # the newly shipped file against the one it replaced).
    theirs = {(r["profile"], r["scale"]): r for r in candidate["rows"]}
    lines = ["| camera profile | scale | shipped | candidate | change |", "|---|---|---|---|---|"]
    failed = 0
    for row in shipped["rows"]:
        other = theirs.get((row["profile"], row["scale"]))
        if other is not None:
            _same_crops((row["profile"], row["scale"]), row, other)
        old = row["methods"].get(method)
        new = other["methods"].get(candidate_method) if other is not None else None
        if old is None:
            continue
        label = f"{row['profile']}{'' if row['inside_training_ranges'] else ' *'}"
        if new is None:
            failed += 1
            lines.append(f"| {label} | x{row['scale']:g} | {old['psnr']:.2f} | **not measured** "
                         "| - |")
            continue
        change = new["psnr"] - old["psnr"]
        worse = change < -tolerance
        failed += worse
        lines.append(f"| {label} | x{row['scale']:g} | {old['psnr']:.2f} | {new['psnr']:.2f} | "
                     f"{change:+.3f}{' **loses**' if worse else ''} |")
    ship = not failed
    verdict = (f"Sweep: within {tolerance:g} dB of the shipped model on every row." if ship else
               f"Sweep: do not ship: {failed} row(s) lose more than {tolerance:g} dB or were "
               "not measured.")
    return "\n".join([*lines, "", verdict]), ship


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m training.camera_sweep", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", default=str(DEFAULT_DATA / "benchmarks" / "b100"),
                        help="folder of HR images (never training images)")
    parser.add_argument("--limit", type=int, default=20, help="first N images of the folder")
    parser.add_argument("--crop", type=int, default=256, help="centred HR crop, pixels")
    parser.add_argument("--scales", default="2,4")
    parser.add_argument("--profiles", help="comma-separated profile names (default: all)")
    parser.add_argument("--model", action="append", default=[], metavar="NAME=FILE")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--json", metavar="FILE")
    parser.add_argument("--markdown", metavar="JSON", nargs="+",
                        help="print the README table of earlier --json results (several: "
                        "merged, methods side by side) and exit")
    parser.add_argument("--compare", metavar=("SHIPPED", "CANDIDATE"), nargs=2,
                        help="earlier --json results of the shipped DDIR (method DDIR) and of a "
                        "candidate: exit 1 if the candidate loses more than "
                        f"{TOLERANCE_DB} dB on any profile and scale")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.markdown:
        rows, methods = merge([json.loads(Path(f).read_text()) for f in args.markdown])
        print(markdown(rows, methods))
        return 0
    if args.compare:
        try:
            table, ship = compare(*(json.loads(Path(f).read_text()) for f in args.compare))
        except (OSError, ValueError, KeyError) as exc:
            raise SystemExit(f"error: {exc}") from None
        print(table)
        return 0 if ship else 1
    if args.threads:
        configure(args.threads)
    device = pick_device(args.device)
    model_methods, models = load_models(args.model, device)
    methods: dict[str, Method] = {"bicubic": bicubic_method, **model_methods}
    profiles = PROFILES
    if args.profiles:
        wanted = [p.strip() for p in args.profiles.split(",") if p.strip()]
        unknown = [p for p in wanted if p not in PROFILES]
        if unknown:
            raise SystemExit(f"unknown profile(s) {unknown}; one of: {', '.join(PROFILES)}")
        profiles = {p: PROFILES[p] for p in wanted}
    if not Path(args.images).is_dir():
        raise SystemExit(f"no such folder: {args.images}")
    images = list_images(args.images)[:args.limit]
    if not images:
        raise SystemExit(f"no images in {args.images}")
    scales = [float(s) for s in args.scales.split(",") if s.strip()]
    rows = sweep(images, methods, scales, args.crop, profiles, args.seed)
    print()
    print(markdown(rows, list(methods)))
    if args.json:
        report = {"images": args.images, "limit": args.limit, "crop": args.crop,
                  "seed": args.seed, "device": str(device), "models": models,
                  "methods": list(methods), "rows": rows}
        write_text_atomic(args.json, json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    sys.exit(main())
