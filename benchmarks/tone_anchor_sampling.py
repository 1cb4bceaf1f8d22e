"""How the tone anchor should sample the model: the experiment behind `models.tone_anchor`.

For photos of a folder (a centred crop each, as `training.evaluate --tone`), the shipped DDIR
without its anchor is rendered at x1.5, x3, x5 and x8, and corrected with anchors that differ
only in how d_r samples each LR pixel and at which reference scales:

- oracle: the correction from the render itself, area-averaged back onto the LR grid (what the
  tone check measures; exact, but needs the whole render first)
- centre: one point, the pixel centre (the first anchor)
- quadrant: one point, (+1/4, +1/4) from the centre
- diagonal: two points, (-1/4, -1/4) and (+1/4, +1/4) (the paper-size DDIR's anchor)
- four: the 2 x 2 midpoint rule
- sixteen: the 4 x 4 midpoint rule
every pixel at all of its points, each at the references (1.5, 3, 8), and centre and diagonal
also at (2, 8) (the first anchor's); and `tone_anchor.correction_region` itself, as the model's
file asks ("shipped"), with the diagonal pair in a checkerboard, one point per pixel (the
student's, `tone_anchor.checkerboard`), alternating by row instead, with STRIDE 2 (the pair in
every other row and column: a quarter of the cost) and averaging the model's raw output
instead of its colours clamped to [0, 1] (CLAMP False, the anchor before 2026-11-23). The
sampling variants average clamped colours, as shipped.
Prints MAD / contrast change (levels, `training.tone`) per photo and scale, and the worst.

    PYTHONPATH=. python benchmarks/tone_anchor_sampling.py ../shared/data/benchmarks/b100 --limit 3
    PYTHONPATH=. python benchmarks/tone_anchor_sampling.py ../shared/data/benchmarks/b100 \
        --weights resources/weights/ddir_student.safetensors     # the distilled student
    PYTHONPATH=. python benchmarks/tone_anchor_sampling.py ../shared/data/benchmarks/set14 \
        --synthetic --scales 3.7 --limit 14 --shipped-only --sigma 3     # the low-pass's width
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys

import numpy as np
import torch

from ddir_zoom.imaging.io import load_photo, write_text_atomic
from ddir_zoom.imaging.resample import resample_region
from ddir_zoom.models import load_checkpoint
from ddir_zoom.models import tone_anchor as ta
from ddir_zoom.models.geometry import upscale_queries
from ddir_zoom.models.upscale import upscale_image
from ddir_zoom.resources import bundled_weights
from training.data import list_images
from training.evaluate import synthetic_pairs
from training.tone import tone_error

SAMPLINGS = {
    "centre": [(0.0, 0.0)],
    "quadrant": [(0.25, 0.25)],
    "diagonal": [(-0.25, -0.25), (0.25, 0.25)],
    "four": [(a, b) for a in (-0.25, 0.25) for b in (-0.25, 0.25)],
    "sixteen": [(a, b) for a in (-0.375, -0.125, 0.125, 0.375)
                for b in (-0.375, -0.125, 0.125, 0.375)],
}
VARIANTS = [(name, (1.5, 3.0, 8.0)) for name in SAMPLINGS] + [
    ("centre", (2.0, 8.0)), ("diagonal", (2.0, 8.0))]
SHIPPED = [("shipped", {}), ("diagonal in a checkerboard", {"checkerboard": True}),
           ("shipped with stride 2", {"STRIDE": 2}),
           ("shipped on the raw output", {"CLAMP": False})]


@contextlib.contextmanager
def anchor_constants(**values):
    """`models.tone_anchor` with some of its constants changed, for one variant."""
    saved = {name: getattr(ta, name) for name in values}
    for name, value in values.items():
        setattr(ta, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(ta, name, value)


@contextlib.contextmanager
def checkerboard_as(model, value: bool | None):
    """`model`'s anchor in a checkerboard or not for one variant (None: as its file asks)."""
    own = model.tone_anchor_checkerboard
    if value is not None:
        model.tone_anchor_checkerboard = value
    try:
        yield
    finally:
        model.tone_anchor_checkerboard = own


def field(model, grids, appearance, lr: torch.Tensor, scale: float,
          checkerboard: bool | None = None, **constants) -> torch.Tensor:
    """c_r at reference `scale`, by `tone_anchor.correction_region` with `constants`, and in
    a checkerboard or not (None: as the model's file asks)."""
    h, w = lr.shape[-2:]
    with checkerboard_as(model, checkerboard), anchor_constants(**constants):
        return ta.correction_region(model, grids, lr, (0, 0), (h, w), appearance, scale)


def measured_at(model, grids, appearance, lr: torch.Tensor, scale: float,
                offsets: list[tuple[float, float]]) -> torch.Tensor:
    """d_r at reference `scale` with every pixel sampled at all of `offsets`."""
    h, w = lr.shape[-2:]
    with checkerboard_as(model, False), anchor_constants(SAMPLE_OFFSETS=offsets):
        return ta.measure(model, grids, (0, 0), (h, w), (h, w), appearance, scale)


def field_by_row(model, grids, appearance, lr: torch.Tensor, scale: float) -> torch.Tensor:
    """c_r at reference `scale` with the diagonal pair alternating by row, not in a
    checkerboard: rows of even photo index at the first point, odd rows at the second."""
    h, w = lr.shape[-2:]
    d = []
    for offset in ta.SAMPLE_OFFSETS:
        d.append(measured_at(model, grids, appearance, lr, scale, [offset]))
    even = (torch.arange(h) % 2 == 0).view(1, 1, h, 1)
    return ta.correction(lr, torch.where(even, d[0], d[1]), torch.ones(1, 1, h, w),
                         ta.sigma_of(model))


def blended(fields: dict[float, torch.Tensor], refs: tuple[float, ...], s: float
            ) -> torch.Tensor:
    with anchor_constants(REFERENCE_SCALES=refs):
        return ta.blend(fields, s)


def corrected(y: np.ndarray, c: torch.Tensor, s: float) -> np.ndarray:
    h, w = y.shape[:2]
    coords, _ = upscale_queries((s, s), (h, w), (0, 0), torch.device("cpu"))
    out = ta.apply(torch.from_numpy(y).reshape(1, -1, 3).double(), coords[None], c.double(),
                   (0, 0))
    return out[0].reshape(h, w, 3).clamp(0, 1).numpy()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder")
    parser.add_argument("--limit", type=int, default=8)
    parser.add_argument("--crop", type=int, default=96)
    parser.add_argument("--scales", default="1.5,3,5,8")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--weights", help="model file (default: the shipped DDIR)")
    parser.add_argument("--sigma", type=float, help="the low-pass's sigma (default: shipped)")
    parser.add_argument("--synthetic", action="store_true",
                        help="zoom the folder's images degraded synthetically at each scale "
                        "(as training.evaluate --synthetic) instead of crops of them")
    parser.add_argument("--shipped-only", action="store_true",
                        help="only no anchor, the oracle and the shipped anchor")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.sigma:
        ta.SIGMA = args.sigma  # its reach follows (tone_anchor.radius)
    model, _ = load_checkpoint(args.weights or bundled_weights("ddir"))
    model.tone_anchor = False
    variants = [] if args.shipped_only else VARIANTS
    scales = [float(v) for v in args.scales.split(",")]
    if args.synthetic:
        inputs = [(pair.name, pair.lr, [s]) for s in scales
                  for pair in synthetic_pairs(args.folder, s)[:args.limit]]
    else:
        inputs = []
        for path in list_images(args.folder)[:args.limit]:
            rgb = load_photo(path).rgb
            top = max(0, (rgb.shape[0] - args.crop) // 2)
            left = max(0, (rgb.shape[1] - args.crop) // 2)
            inputs.append((path.name, np.ascontiguousarray(
                rgb[top:top + args.crop, left:left + args.crop]), scales))
    rows = []
    for name, photo, photo_scales in inputs:
        lr = torch.from_numpy(photo.transpose(2, 0, 1).copy())[None]
        grids, appearance = model.prepare(lr)
        c_r = {(r, sampling): field(model, grids, appearance, lr, r,
                                    checkerboard=False, SAMPLE_OFFSETS=SAMPLINGS[sampling])
               for sampling, refs in variants for r in refs}
        shipped = {key: {r: field(model, grids, appearance, lr, r, **constants)
                         for r in ta.REFERENCE_SCALES}
                   for key, constants in SHIPPED if key == "shipped" or not args.shipped_only}
        if not args.shipped_only:
            shipped["diagonal alternating by row"] = {
                r: field_by_row(model, grids, appearance, lr, r) for r in ta.REFERENCE_SCALES}
        for s in photo_scales:
            y = upscale_image(model, photo, s)
            h, w = photo.shape[:2]
            back = resample_region(y, 1.0 / s, (0, 0), (h, w), "area")
            oracle = ta.lowpass(lr.double() - torch.from_numpy(back.transpose(2, 0, 1).copy())
                                [None].double(), torch.ones(1, 1, h, w, dtype=torch.float64))
            errors = {"none": tone_error(y, photo, s),
                      "oracle": tone_error(corrected(y, oracle, s), photo, s)}
            for key, fields in shipped.items():
                errors[key] = tone_error(corrected(y, ta.blend(fields, s), s), photo, s)
            for sampling, refs in variants:
                c = blended({r: c_r[r, sampling] for r in refs}, refs, s)
                key = f"{sampling} at x{', x'.join(f'{r:g}' for r in refs)}"
                errors[key] = tone_error(corrected(y, c, s), photo, s)
            rows.append({"photo": name, "scale": s,
                         **{k: [e.mad_255, e.contrast_255] for k, e in errors.items()}})
            print(name, f"x{s:g}", " | ".join(f"{k}: {e.mad_255:.2f} / {e.contrast_255:.2f}"
                                                    for k, e in errors.items()), flush=True)
    keys = [k for k in rows[0] if k not in ("photo", "scale")]
    worst = {k: [max(r[k][0] for r in rows), max(r[k][1] for r in rows)] for k in keys}
    print("\nworst MAD / contrast change (levels):")
    for k, (mad, contrast) in worst.items():
        print(f"- {k}: {mad:.2f} / {contrast:.2f}")
    if args.json:
        write_text_atomic(args.json, json.dumps({"sigma": ta.SIGMA, "rows": rows, "worst": worst},
                                                indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
