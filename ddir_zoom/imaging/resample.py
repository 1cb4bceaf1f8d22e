"""Reference resampling of float images: bicubic (a = -0.5) and area averaging.

Coordinates follow the pixel-centre convention used everywhere in ddir-zoom: the image spans
[0, w) x [0, h) in source pixel units, pixel i has its centre at i + 0.5, and output pixel j of a
resampling by scale s shows the source point (j + 0.5) / s. Resampling is separable and each
output pixel depends only on its own index, so any rectangle of an output (`out_offset`,
`out_shape`) equals the same pixels of the whole output exactly: the viewer renders tiles of a
view, the exporter strips of a file, and both match a full render.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

Method = Literal["bicubic", "area"]
CUBIC_A = -0.5


def cubic_kernel(x: np.ndarray, a: float = CUBIC_A) -> np.ndarray:
    """Keys' cubic convolution kernel; a = -0.5 is the standard (Keys 1981, MATLAB, Pillow)."""
    x = np.abs(x)
    x2, x3 = x * x, x * x * x
    near = (a + 2.0) * x3 - (a + 3.0) * x2 + 1.0
    far = a * x3 - 5.0 * a * x2 + 8.0 * a * x - 4.0 * a
    return np.where(x <= 1.0, near, np.where(x < 2.0, far, 0.0))


def axis_weights(
    in_size: int, scale: float, out_start: float, out_count: int, method: Method = "bicubic"
) -> tuple[np.ndarray, np.ndarray]:
    """Source indices and weights, (out_count, taps) each, of output pixels out_start.. along one
    axis (out_start may be fractional: an output grid shifted by part of a pixel). Indices
    outside the image are clamped (edge pixels repeat)."""
    if in_size <= 0 or out_count < 0 or scale <= 0:
        raise ValueError(f"bad resampling axis: in_size={in_size}, scale={scale}, "
                         f"out_count={out_count}")
    j = out_start + np.arange(out_count, dtype=np.float64)
    if method == "bicubic":
        centre = (j + 0.5) / scale - 0.5
        # Downscaling widens the kernel by 1/scale so that it averages instead of aliasing.
        stretch = max(1.0, 1.0 / scale)
        support = 2.0 * stretch
        first = np.floor(centre - support) + 1
        taps = int(np.ceil(2 * support))
        idx = first[:, None] + np.arange(taps)[None, :]
        weights = cubic_kernel((centre[:, None] - idx) / stretch)
        weights /= weights.sum(axis=1, keepdims=True)
    elif method == "area":
        lo = j / scale
        hi = (j + 1.0) / scale
        first = np.floor(lo)
        taps = int(np.ceil(1.0 / scale)) + 1
        idx = first[:, None] + np.arange(taps)[None, :]
        # Overlap of the output pixel's footprint with each source pixel, inside the image.
        lo_c = np.clip(lo, 0, in_size)[:, None]
        hi_c = np.clip(hi, 0, in_size)[:, None]
        weights = np.clip(np.minimum(hi_c, idx + 1) - np.maximum(lo_c, idx), 0.0, None)
        total = weights.sum(axis=1, keepdims=True)
        # A footprint wholly outside the image (never inside a normal output) takes the edge.
        weights = np.where(total > 0, weights / np.where(total > 0, total, 1.0),
                           (np.arange(taps) == 0)[None, :].astype(np.float64))
    else:
        raise ValueError(f"unknown resampling method {method!r}")
    idx = np.clip(idx, 0, in_size - 1).astype(np.int64)
    return idx, weights.astype(np.float32)


def apply_axis(image: np.ndarray, idx: np.ndarray, weights: np.ndarray, axis: int) -> np.ndarray:
    """Weighted sum of `image` rows (axis 0) or columns (axis 1) given by `axis_weights`."""
    moved = np.moveaxis(image, axis, 0)
    out = np.zeros((idx.shape[0], *moved.shape[1:]), dtype=np.float32)
    extra = (slice(None),) + (None,) * (moved.ndim - 1)
    for t in range(idx.shape[1]):
        out += weights[:, t][extra] * moved[idx[:, t]]
    return np.moveaxis(out, 0, axis)


def _pair(value: float | tuple[float, float]) -> tuple[float, float]:
    if isinstance(value, tuple | list):
        return float(value[0]), float(value[1])
    return float(value), float(value)


def output_size(in_size: tuple[int, int], scale: float | tuple[float, float]) -> tuple[int, int]:
    """(height, width) of an image of `in_size` resampled by `scale`: the output pixels whose
    centres lie inside the image, ceil(h * s - 0.5), which is round(h * s) with halves rounded
    down; at least 1."""
    sy, sx = _pair(scale)

    def count(n: int, s: float) -> int:
        return max(1, math.ceil(n * s - 0.5 - 1e-9))

    return count(in_size[0], sy), count(in_size[1], sx)


def resample_region(
    image: np.ndarray,
    scale: float | tuple[float, float],
    out_offset: tuple[float, float],
    out_shape: tuple[int, int],
    method: Method = "bicubic",
) -> np.ndarray:
    """Pixels [oy, oy + oh) x [ox, ox + ow) of `image` (h, w[, c]) resampled by `scale`.

    scale: one factor or (scale_y, scale_x), output pixels per source pixel. The region may
    extend past round(h * s); edge pixels repeat there.
    """
    image = np.asarray(image, dtype=np.float32)
    sy, sx = _pair(scale)
    (oy, ox), (oh, ow) = out_offset, out_shape
    rows, row_w = axis_weights(image.shape[0], sy, oy, oh, method)
    cols, col_w = axis_weights(image.shape[1], sx, ox, ow, method)
    # Resample only the source rows and columns this region needs: a tile of a large photo
    # touches a few dozen of its thousands.
    first, last = int(rows.min()), int(rows.max())
    used = np.unique(cols)
    cols = np.searchsorted(used, cols)
    tmp = apply_axis(image[first:last + 1, used], rows - first, row_w, axis=0)
    return apply_axis(tmp, cols, col_w, axis=1)


def resize(
    image: np.ndarray,
    *,
    scale: float | tuple[float, float] | None = None,
    size: tuple[int, int] | None = None,
    method: Method = "bicubic",
) -> np.ndarray:
    """Resample a whole image by `scale` (output size: `output_size`) or to an exact
    `size` (height, width), in which case the scale of each axis is size / input size."""
    if (scale is None) == (size is None):
        raise ValueError("give exactly one of scale and size")
    h, w = np.shape(image)[:2]
    if size is not None:
        out_h, out_w = int(size[0]), int(size[1])
        if out_h <= 0 or out_w <= 0:
            raise ValueError(f"output size must be positive, got {size}")
        scale = (out_h / h, out_w / w)
    else:
        out_h, out_w = output_size((h, w), scale)
    return resample_region(image, scale, (0, 0), (out_h, out_w), method)


def sample_bicubic(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Bicubic (a = -0.5) values of `image` (h, w[, c]) at `points` (N, 2), (y, x) in source
    pixel units (pixel centres at i + 0.5), edge pixels repeating. At the points of an upscale
    grid it equals `resample_region` with method 'bicubic'."""
    image = np.asarray(image, dtype=np.float32)
    h, w = image.shape[:2]
    centre = np.asarray(points, dtype=np.float64) - 0.5
    base = np.floor(centre).astype(np.int64) - 1
    taps = np.arange(4)
    rows = base[:, 0:1] + taps
    cols = base[:, 1:2] + taps
    wy = cubic_kernel(centre[:, 0:1] - rows).astype(np.float32)
    wx = cubic_kernel(centre[:, 1:2] - cols).astype(np.float32)
    rows = np.clip(rows, 0, h - 1)
    cols = np.clip(cols, 0, w - 1)
    patch = image[rows[:, :, None], cols[:, None, :]]  # (N, 4, 4[, c])
    weights = wy[:, :, None] * wx[:, None, :]
    if image.ndim == 3:
        weights = weights[..., None]
    return (patch * weights).sum(axis=(1, 2))
