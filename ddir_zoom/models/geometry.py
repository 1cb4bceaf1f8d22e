"""Query coordinates of a regular output grid (an upscale, or a rectangle of one)."""

from __future__ import annotations

import torch


def grid_axes(
    scale: float | tuple[float, float],
    out_shape: tuple[int, int],
    out_offset: tuple[float, float] = (0, 0),
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """(ys (oh,), xs (ow,)) float64: the LR rows and columns that output rows [oy, oy + oh)
    and columns [ox, ox + ow) of an upscale by `scale` query (see `upscale_queries`)."""
    sy, sx = (scale, scale) if isinstance(scale, int | float) else scale
    (oy, ox), (oh, ow) = out_offset, out_shape
    ys = (oy + torch.arange(oh, dtype=torch.float64, device=device) + 0.5) / sy
    xs = (ox + torch.arange(ow, dtype=torch.float64, device=device) + 0.5) / sx
    return ys, xs


def upscale_queries(
    scale: float | tuple[float, float],
    out_shape: tuple[int, int],
    out_offset: tuple[float, float] = (0, 0),
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """(coords (N, 2) float64, cells (N, 2) float32) of output pixels
    [oy, oy + oh) x [ox, ox + ow) of an upscale by `scale`, row-major.

    Output pixel (r, c) queries the LR point ((r + 0.5) / sy, (c + 0.5) / sx) with the cell
    (1 / sy, 1 / sx) (LIIF's pixel-centre convention). Each coordinate depends only on its own
    index, so a rectangle of the output gets exactly the coordinates the whole output gives it.
    """
    sy, sx = (scale, scale) if isinstance(scale, int | float) else scale
    ys, xs = grid_axes((sy, sx), out_shape, out_offset, device)
    coords = torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1).reshape(-1, 2)
    cells = torch.tensor([1.0 / sy, 1.0 / sx], device=device).expand(coords.shape[0], 2)
    return coords, cells.contiguous()
