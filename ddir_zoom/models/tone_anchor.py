"""The tone anchor: a low-frequency consistency step that keeps a model's zoom at the photo's
colours and brightness.

A model trained on real camera pairs can drift in tone (exposure, local contrast) even when its
targets are tone-aligned: real shots carry local tone mapping that no global fit removes, and a
fine-tuned model is not converged. The anchor measures the drift at the photo's own resolution
and takes it out of every query:

    d_r(i) = the mean of the model's colours, clamped to [0, 1] as they are shown, at the two
             points (-1/4, -1/4) and (+1/4, +1/4) LR pixels from the centre of LR pixel i,
             rendered at reference scale r (cell 1 / r): the two-point midpoint rule for the
             area mean of the zoom over pixel i, which is what the zoom shrunk back to the
             photo's grid shows there (a model file may ask for one of the two points per
             pixel, in a checkerboard: `checkerboard`)
    c_r    = G_sigma * (LR - d_r)      a Gaussian low-pass, SIGMA LR pixels, on the LR grid
    y'(q)  = y(q) + bilinear(c)(q)     for a query q at scale s, where c interpolates the c_r of
             the two REFERENCE_SCALES around s linearly in log s (the nearest one outside them)

Measured (benchmarks/tone_anchor_sampling.py, worst MAD / contrast change in levels, the
paper-size DDIR on eight B100 photos at x1.5-x8): sampling the pixel centre alone left
1.26 / 1.90, because the centre is the one point that a single latent decodes (the local
ensemble's weights are 1, 0, 0, 0 there) and a model is biased there; the two diagonal points
measure as well as four (0.38 / 0.29 against 0.37 / 0.34), one point does not (1.38 / 0.74);
the pair in a checkerboard costs half and measures nearly as well for the student, not for
the paper-size model (`checkerboard`). Two reference scales (x2, x8) left 0.82 levels of
contrast at x1.5; three bracket every zoom closely enough. A sigma of 3 left 1.09 levels of
contrast on Set14 at x3.7 (even corrected from the render itself); sigma 2 leaves 0.86.
Averaging the model's raw output instead of its clamped colours left the distilled student
0.58 / 1.77 on B100 photos, clamped 0.36 / 0.59 (both points per pixel; its overshoots past
white are clipped on screen but were counted by the anchor).

c only holds what a blur of SIGMA LR pixels keeps, so detail is untouched; the zoom shrunk back to
the photo's grid then has the photo's low-pass (`training.tone` measures exactly that).

Exact and cheap. d(i) depends only on the features around pixel i, so it is measured in tiles
with no halo (`measure`, tile-exact, see `engine.features`), once per photo and reference
(cached by the engine); the low-pass is zero-padded and renormalised at the photo's border
only, so c over a region, low-passed from the d around it RADIUS pixels wide (`correction`),
equals the whole photo's c there: a viewport tile, an export and a whole-image render get the
same pixels (tested). It costs two decoder evaluations (SAMPLE_OFFSETS; one in a checkerboard)
per LR pixel for each of the (at most two) reference scales a zoom needs, and per query a
bilinear lookup.

A model file opts in with `"tone_anchor": true` in its info (`load_checkpoint` sets
`model.tone_anchor`, `model.tone_anchor_sigma` from `"tone_anchor_sigma"`, see SIGMA, and
`model.tone_anchor_checkerboard` from `"tone_anchor_checkerboard"`, see `checkerboard`); the
official LIIF weights are used as published.
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F

from ddir_zoom.models.base import ImplicitSR
from ddir_zoom.models.implicit import LatentGrid

REFERENCE_SCALES = (1.5, 3.0, 8.0)
SAMPLE_OFFSETS = ((-0.25, -0.25), (0.25, 0.25))
"""Where d_r samples each LR pixel, (dy, dx) in LR pixels from its centre."""
STRIDE = 1
"""d_r is taken in every STRIDE-th LR row and column. Every other one (a quarter of the cost)
was measured and not taken: the difference LR - d_r holds fine detail (edges the model
sharpens) that sparse samples alias into the low-pass, 0.82 levels of MAD on the worst B100
photo against 0.37 (benchmarks/tone_anchor_sampling.py)."""
CLAMP = True
"""d_r averages the model's colours clamped to [0, 1], as they are shown (False: the raw
output; kept for benchmarks/tone_anchor_sampling.py, which measures the difference)."""
SIGMA = 2.0
"""LR pixels: the low-pass of the correction, unless the model file sets its own
(`"tone_anchor_sigma"` in its info, `sigma_of`): a model whose drift holds finer structure needs
a narrower one. The distilled student uses 1.5: with 2 it moved 1.07-1.21 levels of contrast at
x3.7 (Set14, B100), with 1.5 0.88-0.90 (even with a reference scale at exactly x3.7, sigma 2
left 1.16, and four sample points per pixel instead of two 1.20: the low-pass was the limit)."""
SIGMA_RANGE = (0.5, 8.0)
"""What a model file may ask for: narrower would pass detail, wider reaches too far."""
RADIUS = math.ceil(3 * SIGMA)


def checkerboard(model: ImplicitSR) -> bool:
    """Whether `model`'s anchor samples each LR pixel at one of SAMPLE_OFFSETS, in turn by
    photo index (pixel (i, j) the ((i + j) // STRIDE) % len(SAMPLE_OFFSETS)-th: a checkerboard
    of the diagonal pair), instead of at all of them: half the decoding. The pair's difference
    then alternates from pixel to pixel, the highest frequency there is, which the low-pass
    removes; what the model's output holds at that frequency aliases into the correction.
    Measured (benchmarks/tone_anchor_sampling.py, eight B100 photos at x1.5-x8, worst MAD /
    contrast change in levels): the distilled student 0.35 / 0.76 against 0.30 / 0.62 with
    both points (on Set14 at x3.7 0.60 / 0.63 against 0.59 / 0.58), so its file asks for it
    (`"tone_anchor_checkerboard": true`, the viewer's first pass, where a second counts); the
    paper-size DDIR, whose output holds more fine detail, 0.66 / 0.60 against 0.38 / 0.29, so
    it keeps both. Alternating by row instead left 0.99 / 0.77 for the student (the pair's
    difference aliases from a whole band of frequencies)."""
    return model.tone_anchor_checkerboard


def sigma_of(model: ImplicitSR) -> float:
    """The anchor's low-pass width for `model` (LR pixels)."""
    return model.tone_anchor_sigma or SIGMA


def check_sigma(value: object) -> float:
    """`value` as a low-pass width a model file may ask for; ValueError saying why not."""
    low, high = SIGMA_RANGE
    if (isinstance(value, bool) or not isinstance(value, int | float)
            or not math.isfinite(value) or not low <= value <= high):
        raise ValueError(f"bad tone_anchor_sigma {value!r} (a number from {low:g} to {high:g})")
    return float(value)


def radius(sigma: float | None = None) -> int:
    """LR pixels the low-pass of width `sigma` (default SIGMA) reaches."""
    return math.ceil(3 * (sigma or SIGMA))


def _kernel(device: torch.device, dtype: torch.dtype, sigma: float) -> torch.Tensor:
    r = radius(sigma)
    x = torch.arange(-r, r + 1, device=device, dtype=dtype)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def lowpass(image: torch.Tensor, valid: torch.Tensor, sigma: float | None = None
            ) -> torch.Tensor:
    """Gaussian low-pass (`sigma`, default SIGMA) of (1, C, h, w) `image` over the pixels where
    `valid` (1, 1, h, w) is 1, renormalised by the weight of the valid pixels: outside the photo
    counts as missing, not as black, so the result near the border equals the whole photo's."""
    sigma = sigma or SIGMA
    r = radius(sigma)
    k = _kernel(image.device, image.dtype, sigma)
    channels = image.shape[1]

    def blur(x: torch.Tensor, c: int) -> torch.Tensor:
        x = F.conv2d(F.pad(x, (r, r, 0, 0)), k.view(1, 1, 1, -1).expand(c, 1, 1, -1),
                     groups=c)
        return F.conv2d(F.pad(x, (0, 0, r, r)),
                        k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)

    weight = blur(valid, 1)
    return blur(image * valid, channels) / weight.clamp_min(1e-12)


def measure(model: ImplicitSR, grids: dict[str, LatentGrid], origin: tuple[int, int],
            shape: tuple[int, int], image_hw: tuple[int, int], appearance: torch.Tensor | None,
            reference: float) -> torch.Tensor:
    """d_r over the `shape` (h, w) LR pixels from photo pixel `origin`: (1, 3, h, w), zero
    where not sampled (see `sampled`: by photo index, so that a tile samples the same pixels
    as the whole photo). d_r(i) reads only the latents around pixel i, so it is exact in any
    tile; `grids` must cover the region and one pixel around it."""
    return measure_tiles(model, grids, [(origin, shape)], image_hw, appearance, reference)[0]


@torch.inference_mode()
def measure_tiles(model: ImplicitSR, grids: dict[str, LatentGrid],
                  tiles: list[tuple[tuple[int, int], tuple[int, int]]],
                  image_hw: tuple[int, int], appearance: torch.Tensor | None,
                  reference: float) -> list[torch.Tensor]:
    """`measure` for each (origin, shape) of `tiles` (disjoint), in as few queries as the
    rectangles they fill: large batches decode faster than many small ones. `grids` must cover
    every tile and one pixel around it. Each rectangle (`_boxes`) is measured as its grid of
    points (`ImplicitSR.query_grid`): the same values as gathering the points one by one, at
    less cost. A view's tiles, measured as it is refined centre first, fill one rectangle at a
    time; a diagonal pan leaves an L, which gathered point by point took a third longer (the
    student, one thread, /tmp scratch run: 44 against 33 ms for 33k points)."""
    if STRIDE != 1:
        return _measure_points(model, grids, tiles, image_hw, appearance, reference)
    measured: list[torch.Tensor | None] = [None] * len(tiles)
    for box, members in _boxes(tiles):
        values = _measure_box(model, grids, box, [tiles[i] for i in members], image_hw,
                              appearance, reference)
        for i, value in zip(members, values, strict=True):
            measured[i] = value
    return measured


def _boxes(tiles: list[tuple[tuple[int, int], tuple[int, int]]]
           ) -> list[tuple[tuple[int, int, int, int], list[int]]]:
    """The disjoint `tiles` ((y, x), (h, w)) as rectangles they fill: (y0, x0, y1, x1) and the
    indices of its tiles. Runs of adjacent tiles along a row, stacked where the next row's run
    spans the same columns (a view's tiles lie on one grid)."""
    rows: dict[tuple[int, int], list[int]] = {}
    for i, ((y, _), (h, _)) in enumerate(tiles):
        rows.setdefault((y, h), []).append(i)
    # (x0, x1, bottom) -> (top, tiles) of the rectangles so far.
    boxes: dict[tuple[int, int, int], tuple[int, list[int]]] = {}
    for y, h in sorted(rows):
        runs: list[list] = []
        for i in sorted(rows[(y, h)], key=lambda i: tiles[i][0][1]):
            x, w = tiles[i][0][1], tiles[i][1][1]
            if runs and runs[-1][1] == x:
                runs[-1][1] = x + w
                runs[-1][2].append(i)
            else:
                runs.append([x, x + w, [i]])
        for x0, x1, members in runs:
            top, below = boxes.pop((x0, x1, y), (y, []))
            boxes[(x0, x1, y + h)] = (top, below + members)
    return [((top, x0, bottom, x1), members)
            for (x0, x1, bottom), (top, members) in boxes.items()]


def _average(colours: list[torch.Tensor]) -> torch.Tensor:
    """d_r from the colours at each of SAMPLE_OFFSETS. Clamped as the zoom is shown: where a
    model overshoots [0, 1] (at strong edges), what the eye sees (and `training.tone`
    measures) is the clamped colour."""
    d = 0.0
    for colour in colours:
        d = d + (colour.clamp(0.0, 1.0) if CLAMP else colour)
    return d / len(colours)


def _measure_box(model: ImplicitSR, grids: dict[str, LatentGrid],
                 box: tuple[int, int, int, int],
                 tiles: list[tuple[tuple[int, int], tuple[int, int]]],
                 image_hw: tuple[int, int], appearance: torch.Tensor | None,
                 reference: float) -> list[torch.Tensor]:
    """`measure_tiles` of tiles that fill `box`, every pixel sampled (STRIDE 1). In a
    checkerboard (`checkerboard`), the pixels of one offset are k x k strided grids (k
    offsets): those whose row and column are a and b modulo k take the offset (a + b) mod k."""
    device = next(iter(grids.values())).values.device
    y0, x0, y1, x1 = box
    cell = (1.0 / reference, 1.0 / reference)

    def colours(first: tuple[int, int], step: int, offset: tuple[float, float]
                ) -> torch.Tensor:
        rows = torch.arange(y0 + first[0], y1, step, device=device).to(torch.float64) + 0.5
        cols = torch.arange(x0 + first[1], x1, step, device=device).to(torch.float64) + 0.5
        rgb = model.query_grid(grids, rows + offset[0], cols + offset[1], cell, image_hw,
                               appearance)
        return rgb[0].view(len(rows), len(cols), 3).permute(2, 0, 1)[None]

    if checkerboard(model):
        k = len(SAMPLE_OFFSETS)
        d = torch.empty(1, 3, y1 - y0, x1 - x0, device=device)
        for a, b in itertools.product(range(k), repeat=2):
            first = ((a - y0) % k, (b - x0) % k)  # the box's first row and column ≡ a, b
            if first[0] < y1 - y0 and first[1] < x1 - x0:
                d[:, :, first[0]::k, first[1]::k] = _average(
                    [colours(first, k, SAMPLE_OFFSETS[(a + b) % k])])
    else:
        d = _average([colours((0, 0), 1, offset) for offset in SAMPLE_OFFSETS])
    return [d[:, :, oy - y0:oy - y0 + h, ox - x0:ox - x0 + w].contiguous()
            for (oy, ox), (h, w) in tiles]


def _measure_points(model: ImplicitSR, grids: dict[str, LatentGrid],
                    tiles: list[tuple[tuple[int, int], tuple[int, int]]],
                    image_hw: tuple[int, int], appearance: torch.Tensor | None,
                    reference: float) -> list[torch.Tensor]:
    """`measure_tiles` of any tiles, their sampled pixels' points gathered into one query."""
    device = next(iter(grids.values())).values.device
    centres, layouts = [], []
    for origin, shape in tiles:
        rows, cols = _sampled(origin, shape, device)
        ys = rows.to(torch.float64) + origin[0] + 0.5
        xs = cols.to(torch.float64) + origin[1] + 0.5
        centres.append(torch.stack(torch.meshgrid(ys, xs, indexing="ij"), -1).reshape(-1, 2))
        layouts.append((shape, rows, cols))
    centres = torch.cat(centres)[None]
    n = centres.shape[1]
    offsets = centres.new_tensor(SAMPLE_OFFSETS)
    if checkerboard(model):
        # Each pixel at its offset: (row + column) // STRIDE modulo the offsets' count.
        turn = (centres.sum(-1) - 1.0).long() // STRIDE % len(SAMPLE_OFFSETS)
        coords = centres + offsets[turn]
        cells = torch.full_like(coords, 1.0 / reference, dtype=torch.float32)
        d = _average([model.query(grids, coords, cells, image_hw, appearance)])
    else:
        coords = torch.cat([centres + offset for offset in offsets], 1)
        cells = torch.full_like(coords, 1.0 / reference, dtype=torch.float32)
        colours = model.query(grids, coords, cells, image_hw, appearance)  # (1, k * n, 3)
        d = _average([colours[:, k * n:(k + 1) * n] for k in range(len(SAMPLE_OFFSETS))])
    measured, start = [], 0
    for (h, w), rows, cols in layouts:
        part = d[0, start:start + len(rows) * len(cols)]
        start += len(rows) * len(cols)
        tile = torch.zeros(1, 3, h, w, device=device)
        tile[:, :, rows[:, None], cols[None, :]] = part.reshape(
            len(rows), len(cols), 3).permute(2, 0, 1)[None]
        measured.append(tile)
    return measured


def _sampled(origin: tuple[int, int], shape: tuple[int, int], device: torch.device
             ) -> tuple[torch.Tensor, torch.Tensor]:
    rows = torch.arange(shape[0], device=device)
    cols = torch.arange(shape[1], device=device)
    return rows[(rows + origin[0]) % STRIDE == 0], cols[(cols + origin[1]) % STRIDE == 0]


def sampled(origin: tuple[int, int], shape: tuple[int, int], device: torch.device
            ) -> torch.Tensor:
    """Where d_r is sampled among the `shape` LR pixels from photo pixel `origin`: (1, 1, h, w),
    1 at every STRIDE-th row and column by photo index."""
    rows, cols = _sampled(origin, shape, device)
    valid = torch.zeros(1, 1, *shape, device=device)
    valid[:, :, rows[:, None], cols[None, :]] = 1.0
    return valid


@torch.inference_mode()
def correction(lr: torch.Tensor, measured: torch.Tensor, valid: torch.Tensor,
               sigma: float | None = None) -> torch.Tensor:
    """c_r = G_sigma * (LR - d_r) over the sampled pixels, from `measure`'s d_r and mask over
    the same LR pixels `lr` (1, 3, h, w). Exact `radius(sigma)` pixels in from every edge that
    is not the photo's border (the low-pass reaches that far)."""
    return lowpass((lr - measured) * valid, valid, sigma)


def correction_region(model: ImplicitSR, grids: dict[str, LatentGrid], lr: torch.Tensor,
                      origin: tuple[int, int], image_hw: tuple[int, int],
                      appearance: torch.Tensor | None, reference: float) -> torch.Tensor:
    """The correction c_r (1, 3, h, w) at `reference` scale r for the LR pixels of `lr`
    (1, 3, h, w), whose pixel (0, 0) is photo pixel `origin`. Exact in its inner part,
    `radius(sigma_of(model))` pixels in from every edge that is not the photo's border;
    `grids` must cover the latents those pixels read (their neighbours one pixel around)."""
    shape = tuple(lr.shape[2:])
    measured = measure(model, grids, origin, shape, image_hw, appearance, reference)
    valid = sampled(origin, shape, lr.device)
    return correction(lr, measured.to(lr.dtype), valid.to(lr.dtype), sigma_of(model))


def references(scale: float | tuple[float, float]) -> list[tuple[float, float]]:
    """(reference scale, weight) pairs whose c_r blend into the correction for `scale`: the two
    REFERENCE_SCALES around it, linearly in log scale, or the nearest one outside them."""
    s = math.sqrt(scale[0] * scale[1]) if isinstance(scale, tuple) else float(scale)
    if s <= REFERENCE_SCALES[0]:
        return [(REFERENCE_SCALES[0], 1.0)]
    for low, high in itertools.pairwise(REFERENCE_SCALES):
        if s < high:
            t = math.log(s / low) / math.log(high / low)
            return [(low, 1.0 - t), (high, t)] if t > 0.0 else [(low, 1.0)]
    return [(REFERENCE_SCALES[-1], 1.0)]


def blend(fields: dict[float, torch.Tensor], scale: float | tuple[float, float]) -> torch.Tensor:
    """The correction for `scale` from `fields` {reference: c_r}, which must hold the
    `references(scale)`."""
    total = None
    for reference, weight in references(scale):
        part = fields[reference] * weight
        total = part if total is None else total + part
    return total


def _axis(positions: torch.Tensor, origin: int, size: int
          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Bilinear lookup along one axis of a field `size` long whose sample 0 is LR pixel
    `origin`: (index before, index after, weight of the one after) at `positions` (LR pixel
    units); beyond the field's centres, its edge value."""
    f = (positions - 0.5 - origin).clamp(0, size - 1)
    i0 = f.floor().long().clamp(max=size - 2) if size > 1 else f.floor().long()
    return i0, (i0 + 1).clamp(max=size - 1), f - i0


def apply(rgb: torch.Tensor, coords: torch.Tensor, field: torch.Tensor,
          field_origin: tuple[int, int]) -> torch.Tensor:
    """rgb (B, N, 3) + the bilinear interpolation of `field` (1, 3, h, w, LR pixel (0, 0) at
    photo pixel `field_origin`) at `coords` (B, N, 2) in photo LR pixel units; queries beyond
    the field's centres take its edge values (the photo's border)."""
    _, _, h, w = field.shape
    y0, y1, ty = _axis(coords[..., 0], field_origin[0], h)
    x0, x1, tx = _axis(coords[..., 1], field_origin[1], w)
    ty, tx = ty.to(rgb.dtype).unsqueeze(-1), tx.to(rgb.dtype).unsqueeze(-1)
    flat = field[0].permute(1, 2, 0).reshape(-1, 3)

    def at(yy: torch.Tensor, xx: torch.Tensor) -> torch.Tensor:
        return flat.index_select(0, (yy * w + xx).reshape(-1)).reshape(*yy.shape, 3)

    top = at(y0, x0) * (1 - tx) + at(y0, x1) * tx
    bottom = at(y1, x0) * (1 - tx) + at(y1, x1) * tx
    return rgb + top * (1 - ty) + bottom * ty


def apply_grid(rgb: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, field: torch.Tensor,
               field_origin: tuple[int, int]) -> torch.Tensor:
    """`apply` for the queries of a regular grid, rows `ys` x columns `xs` (LR pixel units,
    `geometry.grid_axes`), row-major in rgb (1, len(ys) * len(xs), 3). The same products and
    sums per pixel as `apply`, so the same values, but the field is interpolated along x once
    per field row and then along y, not gathered four times per query: a tenth of the cost."""
    _, _, h, w = field.shape
    y0, y1, ty = _axis(ys, field_origin[0], h)
    x0, x1, tx = _axis(xs, field_origin[1], w)
    ty, tx = ty.to(rgb.dtype)[:, None, None], tx.to(rgb.dtype)[:, None]
    first, last = int(y0.min()), int(y1.max())  # the field rows these queries read
    rows = field[0, :, first:last + 1].permute(1, 2, 0)  # (rows, w, 3)
    along_x = rows[:, x0] * (1 - tx) + rows[:, x1] * tx  # (rows, len(xs), 3)
    y0, y1 = y0 - first, y1 - first
    out = rgb.view(len(ys), len(xs), 3) + along_x[y0] * (1 - ty) + along_x[y1] * ty
    return out.view(rgb.shape)
