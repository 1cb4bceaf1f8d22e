"""Training data: LR patches and the HR pixels that fall inside them, from three kinds of source.

Geometry (the same as the models'): HR pixel j of a pair at scale s shows the LR point
(j + 0.5) / s. A sample is an LR patch of `patch` x `patch` pixels at origin (y0, x0) and every HR
pixel whose centre lies inside it, with its query coordinate relative to the patch. Nothing needs
x0 * s to be an integer, so any continuous scale gives exact pairs.

Sources:
- `RealArbiSRSource`: registered pairs in the RealArbiSR layout (Train/HR<scale>/,
  Train/LR<scale>/, scale folders like 1dot5, 2, 2dot5), paired by sorted name.
- `City100Source`: City100 pairs (NNNH / NNNL on the same grid, the wide shot L having an
  effective resolution `effective_scale` times lower), H's tones aligned to L's (a
  per-channel gain and offset, `align_tones`). A pair at scale s >= s_eff is
  (area_downsample(L, s), H); at s < s_eff it is (area_downsample(L, s_eff),
  area_downsample(H, s_eff / s)): the real lens and sensor degradation at continuous scales.
- `SyntheticSource`: HR photos with the synthetic real-camera degradation of `degradation`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ddir_zoom.imaging.io import load_photo
from ddir_zoom.imaging.resample import apply_axis, axis_weights, sample_bicubic
from training.degradation import SCALE_RANGE, VARIANTS, WIDE, Ranges, degrade

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp"}
CITY100_VALIDATION = ("001", "016", "048", "060", "098")
CITY100_EFFECTIVE_SCALE = 2.4


@dataclass(frozen=True)
class ScaleSampler:
    """Training scales: uniform in [low, high], and with probability `extra_share` uniform in
    [high, extra_high] instead, so that a model also learns to keep tones and detail at the
    large zooms a viewer reaches (LIIF trained to x4 drifts beyond it)."""

    low: float = SCALE_RANGE[0]
    high: float = SCALE_RANGE[1]
    extra_high: float = 0.0
    extra_share: float = 0.0

    def draw(self, rng: np.random.Generator) -> float:
        if self.extra_share > 0 and self.extra_high > self.high and rng.random() < self.extra_share:
            return float(rng.uniform(self.high, self.extra_high))
        return float(rng.uniform(self.low, self.high))


def as_sampler(scales: ScaleSampler | tuple[float, float]) -> ScaleSampler:
    return scales if isinstance(scales, ScaleSampler) else ScaleSampler(*scales)


@dataclass
class Sample:
    """lr: (patch, patch, 3); coords: (M, 2) query points in patch LR pixels; rgb: (M, 3) HR
    colours; scale: (sy, sx) HR pixels per LR pixel."""

    lr: np.ndarray
    coords: np.ndarray
    rgb: np.ndarray
    scale: tuple[float, float]


def list_images(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def _as_uint8(path: Path) -> np.ndarray:
    """Photos are held as uint8 (4x less memory); 16-bit sources keep float32."""
    photo = load_photo(path)
    if photo.bit_depth == 8:
        return (photo.rgb * 255.0 + 0.5).astype(np.uint8)
    return photo.rgb


def _float(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    return image.astype(np.float32)


def hr_pixels_in_patch(
    hr: np.ndarray, scale: tuple[float, float], origin: tuple[float, float], patch: int,
    hr_origin: tuple[int, int] = (0, 0),
) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates (relative to the patch, LR pixels) and colours of the HR pixels whose centres
    lie in the LR patch [y0, y0 + patch) x [x0, x0 + patch).

    hr may be a crop of the whole HR image whose pixel (0, 0) is whole-image pixel `hr_origin`.
    """
    sy, sx = scale
    y0, x0 = origin

    def span(o: float, s: float, offset: int, size: int) -> np.ndarray:
        first = int(np.ceil(o * s - 0.5))
        last = int(np.ceil((o + patch) * s - 0.5))  # exclusive
        j = np.arange(max(first, offset), min(last, offset + size))
        return j

    rows = span(y0, sy, hr_origin[0], hr.shape[0])
    cols = span(x0, sx, hr_origin[1], hr.shape[1])
    block = hr[rows[0] - hr_origin[0]:rows[-1] + 1 - hr_origin[0],
               cols[0] - hr_origin[1]:cols[-1] + 1 - hr_origin[1]]
    ys = (rows + 0.5) / sy - y0
    xs = (cols + 0.5) / sx - x0
    coords = np.stack(np.meshgrid(ys, xs, indexing="ij"), axis=-1).reshape(-1, 2)
    return coords.astype(np.float32), _float(block).reshape(-1, 3)


class RealArbiSRSource:
    """Registered pairs in the RealArbiSR layout: <root>/Train/HR<scale>/ and LR<scale>/."""

    name = "realarbisr"

    def __init__(self, root: str | Path, split: str = "Train") -> None:
        base = Path(root) / split
        if not base.is_dir():
            raise FileNotFoundError(f"{base}: no such folder (expected the RealArbiSR layout "
                                    f"<root>/{split}/HR<scale>, LR<scale>)")
        self.pairs: list[tuple[np.ndarray, np.ndarray, tuple[float, float]]] = []
        for hr_dir in sorted(base.glob("HR*")):
            tag = hr_dir.name[2:]
            lr_dir = base / f"LR{tag}"
            if not re.fullmatch(r"\d+(dot\d+)?", tag) or not lr_dir.is_dir():
                continue
            hr_files, lr_files = list_images(hr_dir), list_images(lr_dir)
            if len(hr_files) != len(lr_files):
                raise ValueError(f"{hr_dir} has {len(hr_files)} images but {lr_dir} has "
                                 f"{len(lr_files)}: pairs are matched by sorted name")
            for hr_path, lr_path in zip(hr_files, lr_files, strict=True):
                hr, lr = _as_uint8(hr_path), _as_uint8(lr_path)
                # Registered pairs: the size ratio is the scale of each axis.
                scale = (hr.shape[0] / lr.shape[0], hr.shape[1] / lr.shape[1])
                self.pairs.append((lr, hr, scale))
        if not self.pairs:
            raise ValueError(f"{base}: no HR<scale>/LR<scale> pairs found")

    def sample(self, rng: np.random.Generator, patch: int) -> Sample:
        lr, hr, scale = self.pairs[rng.integers(len(self.pairs))]
        y0 = int(rng.integers(0, lr.shape[0] - patch + 1))
        x0 = int(rng.integers(0, lr.shape[1] - patch + 1))
        coords, rgb = hr_pixels_in_patch(hr, scale, (y0, x0), patch)
        return Sample(_float(lr[y0:y0 + patch, x0:x0 + patch]), coords, rgb, scale)


class City100Source:
    """City100 pairs (NNNH / NNNL, same grid) turned into real pairs at continuous scales."""

    name = "city100"

    def __init__(self, root: str | Path, scenes: Sequence[str] | None = None,
                 exclude: Sequence[str] = CITY100_VALIDATION,
                 effective_scale: float = CITY100_EFFECTIVE_SCALE,
                 scale_range: ScaleSampler | tuple[float, float] = SCALE_RANGE) -> None:
        self.pairs = []
        for lr_hr in load_city100(root, scenes, exclude):
            self.pairs.append(lr_hr)
        if not self.pairs:
            raise ValueError(f"{root}: no City100 pairs (NNNH / NNNL images) found")
        self.effective_scale = effective_scale
        self.scales = as_sampler(scale_range)

    def sample(self, rng: np.random.Generator, patch: int) -> Sample:
        wide, tele = self.pairs[rng.integers(len(self.pairs))]
        scale = self.scales.draw(rng)
        lr_factor = max(scale, self.effective_scale)  # L pixels per LR pixel
        hr_factor = lr_factor / scale  # H pixels per HR pixel
        lr_h = int(wide.shape[0] / lr_factor)
        lr_w = int(wide.shape[1] / lr_factor)
        y0 = int(rng.integers(0, lr_h - patch + 1))
        x0 = int(rng.integers(0, lr_w - patch + 1))
        lr = area_region(wide, lr_factor, (y0, x0), (patch, patch))
        if hr_factor > 1.0:
            hr_size = (int(tele.shape[0] / hr_factor), int(tele.shape[1] / hr_factor))
            hr_origin = (max(0, int(y0 * scale) - 1), max(0, int(x0 * scale) - 1))
            hr_shape = (min(hr_size[0] - hr_origin[0], int(np.ceil(patch * scale)) + 3),
                        min(hr_size[1] - hr_origin[1], int(np.ceil(patch * scale)) + 3))
            hr = area_region(tele, hr_factor, hr_origin, hr_shape)
            coords, rgb = hr_pixels_in_patch(hr, (scale, scale), (y0, x0), patch, hr_origin)
        else:
            coords, rgb = hr_pixels_in_patch(tele, (scale, scale), (y0, x0), patch)
        return Sample(lr, coords, rgb, (scale, scale))


def area_region(image: np.ndarray, factor: float, origin: tuple[int, int],
                shape: tuple[int, int]) -> np.ndarray:
    """Pixels [origin, origin + shape) of `image` area-downsampled by `factor` (source pixels
    per output pixel), equal to the same pixels of the whole downsampled image, reading only the
    source rows and columns they cover."""
    (oy, ox), (h, w) = origin, shape
    r0, c0 = int(oy * factor), int(ox * factor)
    r1 = min(image.shape[0], int(np.ceil((oy + h) * factor)) + 1)
    c1 = min(image.shape[1], int(np.ceil((ox + w) * factor)) + 1)
    rows, row_w = axis_weights(image.shape[0], 1.0 / factor, oy, h, "area")
    cols, col_w = axis_weights(image.shape[1], 1.0 / factor, ox, w, "area")
    crop = _float(image[r0:r1, c0:c1])
    tmp = apply_axis(crop, rows - r0, row_w, axis=0)
    return apply_axis(tmp, cols - c0, col_w, axis=1)


def load_city100(root: str | Path, scenes: Sequence[str] | None = None,
                 exclude: Sequence[str] = (), align: bool = True
                 ) -> list[tuple[np.ndarray, np.ndarray]]:
    """(L, H) uint8 arrays of City100 scenes (NNNL / NNNH files), by scene number.

    align: H's tones fitted to L's (`align_tones`), so that a target never asks a model to
    change the exposure or colour of the photo it zooms into.
    """
    root = Path(root)
    found = {}
    for path in list_images(root):
        match = re.fullmatch(r"(\d+)([HL])", path.stem, re.IGNORECASE)
        if match:
            found.setdefault(match.group(1), {})[match.group(2).upper()] = path
    wanted = scenes if scenes is not None else sorted(found)
    pairs = []
    for scene in wanted:
        if scene in exclude:
            continue
        if scene not in found or set(found[scene]) != {"H", "L"}:
            raise FileNotFoundError(f"{root}: scene {scene} needs both {scene}H and {scene}L")
        wide, tele = _as_uint8(found[scene]["L"]), _as_uint8(found[scene]["H"])
        if align:
            tele = align_tones(tele, wide)
        pairs.append((wide, tele))
    return pairs


TONE_FIT_FACTOR = 8.0
"""Both shots are area-downsampled by this much before the tone fit: far below either shot's
resolution, so the fit sees exposure and colour, not the sharpness the model must learn."""


def tone_fit(source: np.ndarray, reference: np.ndarray,
             factor: float = TONE_FIT_FACTOR) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (gain, offset) that best map `source`'s low-pass onto `reference`'s
    (least squares; both images on the same grid)."""
    shape = (max(1, int(source.shape[0] / factor)), max(1, int(source.shape[1] / factor)))
    a = area_region(source, factor, (0, 0), shape).reshape(-1, 3)
    b = area_region(reference, factor, (0, 0), shape).reshape(-1, 3)
    gains, offsets = np.ones(3, np.float32), np.zeros(3, np.float32)
    for c in range(3):
        design = np.stack([a[:, c], np.ones_like(a[:, c])], axis=1)
        (gains[c], offsets[c]), *_ = np.linalg.lstsq(design, b[:, c], rcond=None)
    return gains, offsets


def align_tones(tele: np.ndarray, wide: np.ndarray) -> np.ndarray:
    """The telephoto shot with its per-channel gain and offset fitted to the wide shot's
    (`tone_fit`): City100's two captures differ in auto exposure and white balance, an artefact
    of shooting twice, not a lens property. Same dtype as `tele`."""
    gains, offsets = tone_fit(tele, wide)
    aligned = np.clip(_float(tele) * gains + offsets, 0.0, 1.0)
    if tele.dtype == np.uint8:
        return (aligned * 255.0 + 0.5).astype(np.uint8)
    return aligned.astype(np.float32)


class SyntheticSource:
    """HR photos with the synthetic real-camera degradation at continuous random scales."""

    name = "synthetic"

    def __init__(self, folders: Sequence[str | Path],
                 scale_range: ScaleSampler | tuple[float, float] = SCALE_RANGE,
                 min_side: int = 0, degradation: str = "full", wide_share: float = 0.0,
                 wide: Ranges = WIDE) -> None:
        if degradation not in VARIANTS:
            raise ValueError(f"unknown degradation {degradation!r}")
        if not 0.0 <= wide_share <= 1.0:
            raise ValueError(f"wide_share must lie in [0, 1], got {wide_share}")
        self.degradation = degradation
        self.wide_share = wide_share
        self.wide = wide
        self.images = []
        for folder in folders:
            for path in sorted(Path(folder).rglob("*")):
                if path.suffix.lower() in IMAGE_SUFFIXES:
                    self.images.append(_as_uint8(path))
        self.images = [im for im in self.images if min(im.shape[:2]) >= min_side]
        if not self.images:
            raise ValueError(f"no photos found in {', '.join(map(str, folders))}")
        self.scales = as_sampler(scale_range)

    def sample(self, rng: np.random.Generator, patch: int, margin: int = 4) -> Sample:
        scale = self.scales.draw(rng)
        for _ in range(100):
            image = self.images[rng.integers(len(self.images))]
            crop = int(np.ceil((patch + 2 * margin) * scale))
            if min(image.shape[:2]) >= crop:
                break
        else:
            raise ValueError(f"no photo is large enough for a {patch}-pixel patch at x{scale:.2f}")
        top = int(rng.integers(0, image.shape[0] - crop + 1))
        left = int(rng.integers(0, image.shape[1] - crop + 1))
        hr = _float(image[top:top + crop, left:left + crop])
        lr_size = patch + 2 * margin
        lr, _ = degrade(hr, scale, rng, out_shape=(lr_size, lr_size), variant=self.degradation,
                        wide_share=self.wide_share, wide=self.wide)
        # Drop the margin, where blur saw the crop's edge rather than the photo.
        coords, rgb = hr_pixels_in_patch(hr, (scale, scale), (margin, margin), patch)
        return Sample(lr[margin:margin + patch, margin:margin + patch], coords, rgb,
                      (scale, scale))


class PregeneratedSource:
    """Pairs degraded ahead of training (`training.pregenerate`): patches are cropped from
    stored LR images and their HR photos, at each pair's exact scale."""

    name = "pregenerated"

    def __init__(self, folder: str | Path) -> None:
        folder = Path(folder)
        index_file = folder / "index.json"
        if not index_file.is_file():
            raise FileNotFoundError(f"{index_file}: no such file (make it with "
                                    "python -m training.pregenerate)")
        self.pairs = []
        photos: dict[str, np.ndarray] = {}
        for entry in json.loads(index_file.read_text()):
            if entry["hr"] not in photos:
                photos[entry["hr"]] = _as_uint8(Path(entry["hr"]))
            self.pairs.append((_as_uint8(folder / entry["lr"]), photos[entry["hr"]],
                               float(entry["scale"])))
        if not self.pairs:
            raise ValueError(f"{index_file}: no pairs")

    def sample(self, rng: np.random.Generator, patch: int, margin: int = 4) -> Sample:
        for _ in range(100):
            lr, hr, scale = self.pairs[rng.integers(len(self.pairs))]
            if min(lr.shape[:2]) >= patch + 2 * margin:
                break
        else:
            raise ValueError(f"no pregenerated pair is large enough for a {patch}-pixel patch")
        # A margin keeps patches away from the borders, where the blur saw the padding.
        y0 = int(rng.integers(margin, lr.shape[0] - patch - margin + 1))
        x0 = int(rng.integers(margin, lr.shape[1] - patch - margin + 1))
        coords, rgb = hr_pixels_in_patch(hr, (scale, scale), (y0, x0), patch)
        return Sample(_float(lr[y0:y0 + patch, x0:x0 + patch]), coords, rgb, (scale, scale))


def augment(sample: Sample, rng: np.random.Generator) -> Sample:
    """Random flips and transpose of the patch, applied to the query coordinates too."""
    lr, coords = sample.lr, sample.coords.copy()
    size = lr.shape[0]
    scale = sample.scale
    if rng.random() < 0.5:
        lr = lr[:, ::-1]
        coords[:, 1] = size - coords[:, 1]
    if rng.random() < 0.5:
        lr = lr[::-1]
        coords[:, 0] = size - coords[:, 0]
    if rng.random() < 0.5:
        lr = lr.transpose(1, 0, 2)
        coords = coords[:, ::-1]
        scale = (scale[1], scale[0])
    return Sample(np.ascontiguousarray(lr), np.ascontiguousarray(coords), sample.rgb, scale)


class Mixture:
    """Draws samples from several sources with given weights."""

    def __init__(self, sources: Sequence, weights: Sequence[float] | None = None) -> None:
        if not sources:
            raise ValueError("no training data: give at least one source")
        self.sources = list(sources)
        w = np.asarray(weights if weights is not None else [1.0] * len(sources), np.float64)
        self.weights = w / w.sum()

    def batch(self, rng: np.random.Generator, batch_size: int, patch: int, queries: int,
              deformation_target: bool = True) -> dict[str, torch.Tensor]:
        """A training batch: lr (B, 3, p, p), coords / cells / hr (B, Q, 2|2|3), and
        bicubic (B, Q, 3), the bicubic upsampling of each LR patch at the queries."""
        lrs, coords, cells, hrs, bicubics = [], [], [], [], []
        for _ in range(batch_size):
            source = self.sources[rng.choice(len(self.sources), p=self.weights)]
            sample = augment(source.sample(rng, patch), rng)
            if sample.coords.shape[0] < queries:
                raise ValueError(f"a patch holds {sample.coords.shape[0]} HR pixels, fewer "
                                 f"than the {queries} queries asked for")
            pick = rng.choice(sample.coords.shape[0], queries, replace=False)
            points = sample.coords[pick]
            lrs.append(sample.lr.transpose(2, 0, 1))
            coords.append(points)
            cells.append(np.broadcast_to(np.asarray([1 / sample.scale[0], 1 / sample.scale[1]],
                                                    np.float32), (queries, 2)))
            hrs.append(sample.rgb[pick])
            if deformation_target:
                bicubics.append(sample_bicubic(sample.lr, points))
        batch = {
            "lr": torch.from_numpy(np.stack(lrs).astype(np.float32)),
            "coords": torch.from_numpy(np.stack(coords).astype(np.float32)),
            "cells": torch.from_numpy(np.stack(cells).astype(np.float32)),
            "hr": torch.from_numpy(np.stack(hrs).astype(np.float32)),
        }
        if deformation_target:
            batch["bicubic"] = torch.from_numpy(np.stack(bicubics).astype(np.float32))
        return batch

