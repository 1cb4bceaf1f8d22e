"""Fit the synthetic degradation's blur and sharpening to a real camera's zoom pairs.

For each City100 training scene (never the validation scenes), the real LR is the wide shot L
area-downsampled by the effective scale; the synthetic LR is the tone-aligned telephoto shot H
through the degradation's blur -> area downsampling -> unsharp mask, without noise or JPEG. A
grid search finds, per scene, the blur sigma and the sharpening amount (LR pixels, a fixed
radius) with the least mean squared difference; the residual's standard deviation bounds the
noise plus registration error. The ranges in `training.degradation` are chosen to cover the
fitted values (and beyond, for other cameras).

  python -m training.fit_degradation --city100 ../shared/data/city100_iphonex --json fit.json
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from ddir_zoom.imaging.io import write_text_atomic
from ddir_zoom.imaging.resample import resize
from training.data import CITY100_EFFECTIVE_SCALE, CITY100_VALIDATION, _float, load_city100
from training.degradation import convolve, gaussian_kernel, sharpen
from training.evaluate import DEFAULT_DATA

SIGMAS = tuple(np.round(np.arange(0.0, 1.61, 0.1), 2))
AMOUNTS = tuple(np.round(np.arange(0.0, 2.01, 0.25), 2))
RADIUS = 1.0


def fit_scene(wide: np.ndarray, tele: np.ndarray, scale: float) -> dict[str, float]:
    real = resize(_float(wide), scale=1.0 / scale, method="area")
    tele = _float(tele)
    margin = 8  # LR pixels left out at the borders, where blur sees the padding
    inner = (slice(margin, -margin), slice(margin, -margin))
    best = None
    for sigma in SIGMAS:
        blurred = tele if sigma == 0 else convolve(
            tele, gaussian_kernel(sigma * scale, sigma * scale, 0.0))
        low = resize(blurred, scale=1.0 / scale, method="area")[:real.shape[0], :real.shape[1]]
        for amount in AMOUNTS:
            synthetic = sharpen(low, amount, RADIUS)
            err = float(np.mean((synthetic[inner] - real[inner]) ** 2))
            if best is None or err < best[0]:
                best = (err, sigma, amount, synthetic)
    err, sigma, amount, synthetic = best
    residual = (synthetic - real)[inner]
    return {"blur_sigma": float(sigma), "sharpen_amount": float(amount),
            "residual_std_255": float(residual.std() * 255), "rmse_255": float(np.sqrt(err) * 255)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.fit_degradation",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--city100", default=str(DEFAULT_DATA / "city100_iphonex"))
    parser.add_argument("--scale", type=float, default=CITY100_EFFECTIVE_SCALE)
    parser.add_argument("--every", type=int, default=1, help="use every N-th training scene")
    parser.add_argument("--json", help="write the per-scene fits and their summary")
    args = parser.parse_args(argv)
    pairs = load_city100(args.city100, exclude=CITY100_VALIDATION)[::args.every]
    fits = []
    for i, (wide, tele) in enumerate(pairs):
        fits.append(fit_scene(wide, tele, args.scale))
        print(f"scene {i + 1}/{len(pairs)}: {fits[-1]}", flush=True)
    summary = {}
    for key in fits[0]:
        values = np.array([f[key] for f in fits])
        summary[key] = {"median": float(np.median(values)), "p10": float(np.percentile(values, 10)),
                        "p90": float(np.percentile(values, 90))}
    print(json.dumps(summary, indent=2))
    if args.json:
        write_text_atomic(args.json, json.dumps({"scale": args.scale, "radius": RADIUS,
                                                 "summary": summary, "scenes": fits}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
