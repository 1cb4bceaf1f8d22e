"""Whole-image upscaling with a model: encode the whole LR image once, query every output pixel.

For evaluation and training-time validation on images that fit in memory. The engine renders
views and exports in tiles with bounded memory; this is the simple reference of the same
geometry (`geometry.grid_axes`, `ImplicitSR.query_grid`).
"""

from __future__ import annotations

import numpy as np
import torch

from ddir_zoom.models import tone_anchor
from ddir_zoom.models.base import ImplicitSR
from ddir_zoom.models.geometry import grid_axes


@torch.inference_mode()
def upscale_image(
    model: ImplicitSR,
    rgb: np.ndarray,
    scale: float | tuple[float, float],
    out_shape: tuple[int, int] | None = None,
    rows_per_chunk: int | None = None,
) -> np.ndarray:
    """RGB (h, w, 3) in [0, 1] upscaled by `scale`, clipped to [0, 1], on the model's device.

    out_shape: default (round(h * sy), round(w * sx)).
    """
    device = next(model.parameters()).device
    sy, sx = (scale, scale) if isinstance(scale, int | float) else scale
    h, w = rgb.shape[:2]
    out_h, out_w = out_shape or (round(h * sy), round(w * sx))
    lr = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None].to(device)
    grids, appearance = model.prepare(lr.float())
    field = tone_anchor.blend(
        {r: tone_anchor.correction_region(model, grids, lr.float(), (0, 0), (h, w), appearance, r)
         for r, _ in tone_anchor.references((sy, sx))}, (sy, sx)) if model.tone_anchor else None
    out = np.empty((out_h, out_w, 3), np.float32)
    rows = rows_per_chunk or max(1, 65536 // out_w)
    for top in range(0, out_h, rows):
        n_rows = min(rows, out_h - top)
        ys, xs = grid_axes((sy, sx), (n_rows, out_w), (top, 0), device)
        rgb_out = model.query_grid(grids, ys, xs, (1.0 / sy, 1.0 / sx), (h, w), appearance)
        if field is not None:
            rgb_out = tone_anchor.apply_grid(rgb_out, ys, xs, field, (0, 0))
        out[top:top + n_rows] = rgb_out[0].clamp(0, 1).reshape(n_rows, out_w, 3).cpu().numpy()
    return out
