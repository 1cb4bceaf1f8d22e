"""Ways to render a photo at a scale: bicubic, or a neural model (LIIF, DDIR, any checkpoint).

Every method renders rectangles of the virtual full render at a scale (see `view`): output pixel
(r, c) of scale (sy, sx) shows the image point ((r + 0.5) / sy, (c + 0.5) / sx). Only the pixels
asked for are computed, and a rectangle equals the same pixels of a whole render. At scales up
to 1 on both axes every method is area averaging: there is nothing to super-resolve.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Protocol

import numpy as np
import torch

from ddir_zoom.engine.features import (
    FeatureTiles,
    appearance_embedding,
    feature_bytes_per_pixel,
    projection_bytes_per_pixel,
    to_tensor,
)
from ddir_zoom.engine.lru import ByteLRU
from ddir_zoom.imaging.resample import resample_region
from ddir_zoom.models import tone_anchor
from ddir_zoom.models.base import ImplicitSR
from ddir_zoom.models.geometry import grid_axes
from ddir_zoom.parallel import one_thread

Scale = tuple[float, float]
ANCHOR_TILE = 32
"""LR pixels per side of a tile of the tone anchor's measurement d_r (`tone_anchor.measure`).
Each LR pixel is measured once, with no halo (the low-pass is taken per render, over the d_r
around it), so small tiles cost no more and keep what a view measures close to what it shows.
Tiles of 64 that each carried the low-pass's halo measured 1.5 times their own pixels."""
ANCHOR_BYTES_PER_PIXEL = 12
"""What the anchor cache holds per LR pixel and reference scale: d_r, three float32."""


ANCHOR_BAND = 128
"""LR rows of a band of anchor tiles that `NeuralMethod.measure_anchor` measures in one query:
large enough to decode efficiently, small enough that its latents (a band of a 1280 x 800 view
at x1.5 holds about 30 MB of the student's projections) stay a small part of memory."""


def _anchor_tile_ranges(y0: int, x0: int, y1: int, x1: int) -> tuple[range, range]:
    """Rows and columns of the anchor tiles over LR pixels [y0, y1) x [x0, x1)."""
    t = ANCHOR_TILE
    return range(y0 // t, (y1 - 1) // t + 1), range(x0 // t, (x1 - 1) // t + 1)


VIEW_LR_PIXELS = 450_000
"""LR pixels under a 1280 x 800 view at x1.5 with the tone anchor's margin: a model whose
projections of that many pixels outgrow the projection cache keeps them for one render only
(`features.FeatureTiles`, `keep_projections`)."""


class Cancelled(Exception):
    """Raised inside rendering when its `cancelled` callback says the work is no longer wanted."""


class RenderMethod(Protocol):
    name: str

    def render(self, scale: Scale, offset: tuple[float, float], shape: tuple[int, int],
               cancelled: Callable[[], bool] | None = None, hurry: bool = False
               ) -> np.ndarray:
        """float32 (h, w, 3) in [0, 1]. `hurry`: these pixels are wanted as soon as possible
        (a view's first tile), even at some extra work in total; the pixels are the same."""
        ...


def downscale(rgb: np.ndarray, scale: Scale, offset: tuple[float, float],
              shape: tuple[int, int]) -> np.ndarray:
    return np.clip(resample_region(rgb, scale, offset, shape, "area"), 0.0, 1.0)


class BicubicMethod:
    """Bicubic (a = -0.5) interpolation: the reference every neural method is compared with."""

    name = "bicubic"

    def __init__(self, rgb: np.ndarray) -> None:
        self.rgb = rgb

    def render(self, scale: Scale, offset: tuple[float, float], shape: tuple[int, int],
               cancelled: Callable[[], bool] | None = None, hurry: bool = False
               ) -> np.ndarray:
        if max(scale) <= 1.0:
            return downscale(self.rgb, scale, offset, shape)
        return np.clip(resample_region(self.rgb, scale, offset, shape, "bicubic"), 0.0, 1.0)


class NeuralMethod:
    """A model decoding exactly the requested pixels from lazily encoded feature tiles.

    A CUDA out-of-memory error is retried with smaller chunks, then the model moves to the CPU
    and `notify` is told; rendering never crashes for lack of GPU memory.
    """

    def __init__(self, name: str, model: ImplicitSR, rgb: np.ndarray, device: torch.device,
                 cache: ByteLRU, notify: Callable[[str], None] | None = None,
                 whole_photo_on_gpu: bool = True, projection_cache: ByteLRU | None = None,
                 anchor_cache: ByteLRU | None = None) -> None:
        self.name = name
        self.rgb = rgb
        self.cache = cache
        self.projection_cache = projection_cache if projection_cache is not None else cache
        self.anchor_cache = anchor_cache if anchor_cache is not None else cache
        self.notify = notify or (lambda message: None)
        self.model = model.to(device).eval()
        if device.type != "mps":
            self.model.use_channels_last()
        self.device = device
        self.chunk = self.model.default_chunk
        tile = block = None
        if device.type == "cuda" and whole_photo_on_gpu:
            # The whole photo in one feature tile when its features fit in half the cache,
            # and in one projection block when its projections do (few, large kernels).
            pixels = rgb.shape[0] * rgb.shape[1]
            if pixels * feature_bytes_per_pixel(self.model) < cache.max_bytes // 2:
                tile = max(rgb.shape[:2])
                if (pixels * projection_bytes_per_pixel(self.model)
                        < self.projection_cache.max_bytes // 2):
                    block = tile
        self.features = self._feature_tiles(device, tile, block)
        self._appearance: torch.Tensor | None = None
        self._appearance_ready = False
        self._lock = threading.Lock()

    def _feature_tiles(self, device: torch.device, tile: int | None = None,
                       block: int | None = None) -> FeatureTiles:
        """This model's features on `device`. A model whose projections of a view would
        outgrow the projection cache keeps them for one render only (VIEW_LR_PIXELS), unless
        the whole photo is one block."""
        keep = (block is not None or VIEW_LR_PIXELS * projection_bytes_per_pixel(self.model)
                <= self.projection_cache.max_bytes)
        return FeatureTiles(self.model, self.rgb, device, self.cache, key=self.name, tile=tile,
                            projections=self.projection_cache, block=block,
                            keep_projections=keep)

    @property
    def keep_projections(self) -> bool:
        """Whether this model's projections stay in the shared projection cache."""
        return self.features.keep_projections

    @property
    def appearance(self) -> torch.Tensor | None:
        """The photo's appearance embedding, computed once on first use (see `features`)."""
        with self._lock:
            if not self._appearance_ready:
                self._appearance = self._with_oom_fallback(
                    lambda: appearance_embedding(self.model, self.rgb, self.device))
                self._appearance_ready = True
            return self._appearance

    def prepare(self) -> None:
        """Do the once-per-photo work now (the appearance embedding)."""
        _ = self.appearance

    def render(self, scale: Scale, offset: tuple[float, float], shape: tuple[int, int],
               cancelled: Callable[[], bool] | None = None, hurry: bool = False
               ) -> np.ndarray:
        """`hurry`: no feature tile is encoded whole for it, only what it reads (see
        `features.FeatureTiles.grids`)."""
        if max(scale) <= 1.0:
            return downscale(self.rgb, scale, offset, shape)
        appearance = self.appearance
        return self._with_oom_fallback(
            lambda: self._decode(scale, offset, shape, appearance, cancelled, hurry))

    def lr_region(self, scale: Scale, offset: tuple[float, float], shape: tuple[int, int]
                  ) -> tuple[int, int, int, int]:
        """LR pixels (y0, x0, y1, x1) whose latents the output rectangle reads: from the upper
        left ensemble neighbour of its first pixel centre to the lower right one of its last
        (`implicit.local_ensemble`), with 1e-5 to spare for rounding, clipped to the photo."""
        h, w = self.rgb.shape[:2]
        (sy, sx), (oy, ox), (oh, ow) = scale, offset, shape
        y_first, y_last = (oy + 0.5) / sy, (oy + oh - 0.5) / sy
        x_first, x_last = (ox + 0.5) / sx, (ox + ow - 0.5) / sx
        return (max(0, int(np.floor(y_first - 0.5 - 1e-5))),
                max(0, int(np.floor(x_first - 0.5 - 1e-5))),
                min(h, int(np.floor(y_last + 0.5 + 1e-5)) + 1),
                min(w, int(np.floor(x_last + 0.5 + 1e-5)) + 1))

    def _decode(self, scale: Scale, offset: tuple[float, float], shape: tuple[int, int],
                appearance: torch.Tensor | None, cancelled: Callable[[], bool] | None,
                hurry: bool = False) -> np.ndarray:
        region = self.lr_region(scale, offset, shape)
        # Decoding and encoding several tiles spread over the cores in pieces; the rest is
        # small operations, faster on one thread (`ddir_zoom.parallel`).
        with one_thread(), self._render_scope():
            # The anchor first: it reads the widest area (the region and its radius around
            # it), so in a hurry the region's part is cut from the anchor's, not computed again.
            if self.model.tone_anchor:
                field = self._anchor_field(region, scale, appearance, cancelled, hurry)
            if not self.features.ensure(*region, cancelled=cancelled, parts=hurry):
                raise Cancelled
            grids = self.features.grids(*region, parts=hurry)
            ys, xs = grid_axes(scale, shape, offset, self.device)
            rgb = self.model.query_grid(grids, ys, xs, (1.0 / scale[0], 1.0 / scale[1]),
                                        self.features.size, appearance, chunk=self.chunk)
            if self.model.tone_anchor:
                rgb = tone_anchor.apply_grid(rgb, ys, xs, field, region[:2])
            return rgb[0].clamp(0, 1).reshape(shape[0], shape[1], 3).cpu().numpy()

    @contextlib.contextmanager
    def _render_scope(self) -> Iterator[None]:
        """What the render's requests share (a hurry's feature part, the blocks of a model
        that does not keep its projections) is dropped when it ends."""
        try:
            yield
        finally:
            self.features.end_render()

    def _anchor_field(self, region: tuple[int, int, int, int], scale: Scale, appearance,
                      cancelled: Callable[[], bool] | None, hurry: bool = False
                      ) -> torch.Tensor:
        """The tone anchor's correction over LR pixels `region` (y0, x0, y1, x1) for a zoom
        by `scale`: the low-pass, over the region and its radius around it (clipped to the
        photo), of LR minus the d_r of the zoom's reference scales blended
        (`tone_anchor.references`, `tone_anchor.blend`), each stitched from tiles of
        ANCHOR_TILE LR pixels measured once per photo, so that it equals the whole photo's
        correction (`models.tone_anchor`). The low-pass is linear and its weights are the same
        for every reference, so blending the d_r first equals blending the corrections up to
        rounding, with one low-pass instead of two."""
        y0, x0, y1, x1 = region
        sigma = tone_anchor.sigma_of(self.model)
        (ey0, ex0, ey1, ex1), tile_rows, tile_cols = self._anchor_extent(region)
        # The photo's pixels and the sampling mask are the same for every reference.
        lr = to_tensor(self.rgb[ey0:ey1, ex0:ex1], self.device)
        valid = tone_anchor.sampled((ey0, ex0), (ey1 - ey0, ex1 - ex0), self.device)
        t = ANCHOR_TILE
        ty0, tx0 = (ey0 // t) * t, (ex0 // t) * t
        tiles = [(ty, tx) for ty in tile_rows for tx in tile_cols]
        measured = {}
        for reference, _ in tone_anchor.references(scale):
            d = self._anchor_tiles(tiles, reference, appearance, cancelled, hurry)
            rows = [torch.cat([d[(ty, tx)] for tx in tile_cols], dim=3) for ty in tile_rows]
            measured[reference] = torch.cat(rows, dim=2)[:, :, ey0 - ty0:ey1 - ty0,
                                                         ex0 - tx0:ex1 - tx0]
        field = tone_anchor.correction(lr, tone_anchor.blend(measured, scale), valid, sigma)
        return field[:, :, y0 - ey0:y1 - ey0, x0 - ex0:x1 - ex0]

    def _anchor_extent(self, region: tuple[int, int, int, int]
                       ) -> tuple[tuple[int, int, int, int], range, range]:
        """What the anchor of LR pixels `region` reads: the region and the low-pass's radius
        around it, clipped to the photo, and the rows and columns of anchor tiles over that."""
        h, w = self.rgb.shape[:2]
        y0, x0, y1, x1 = region
        radius = tone_anchor.radius(tone_anchor.sigma_of(self.model))
        ey0, ex0 = max(0, y0 - radius), max(0, x0 - radius)
        ey1, ex1 = min(h, y1 + radius), min(w, x1 + radius)
        return (ey0, ex0, ey1, ex1), *_anchor_tile_ranges(ey0, ex0, ey1, ex1)

    def _anchor_tiles(self, tiles: list[tuple[int, int]], reference: float, appearance,
                      cancelled: Callable[[], bool] | None, hurry: bool = False
                      ) -> dict[tuple[int, int], torch.Tensor]:
        """d_r of anchor tiles (ty, tx) at `reference`, from the engine's byte-bounded anchor
        cache or measured now and put there (a tile evicted is measured again, identically)."""
        d = {}
        for tile in tiles:
            held = self.anchor_cache.get((self.name, "tone-anchor", reference, *tile))
            d[tile] = None if held is None else held["d"]
        missing = [tile for tile, value in d.items() if value is None]
        if missing:
            if cancelled is not None and cancelled():
                raise Cancelled
            values = self._measure_tiles(missing, reference, appearance, hurry)
            for tile, value in zip(missing, values, strict=True):
                d[tile] = value
                self.anchor_cache.put((self.name, "tone-anchor", reference, *tile), {"d": value})
        return d

    def measure_anchor(self, scale: Scale, offset: tuple[float, float],
                       shape: tuple[int, int], cancelled: Callable[[], bool] | None = None
                       ) -> None:
        """Measure now, into the anchor cache, the tone anchor's tiles that renders of the
        output rectangle will read (a whole view), in bands of ANCHOR_BAND LR rows. A view
        refined tile by tile measures, per tile, the thin ring of anchor tiles its neighbours
        have not: small queries, which decoded about half as fast as these bands (a cold x2.5
        view of the student spent 1.5 s on 0.77 million anchor points). Raises Cancelled if
        `cancelled` says so between bands."""
        if not self.model.tone_anchor or max(scale) <= 1.0:
            return
        _, rows, cols = self._anchor_extent(self.lr_region(scale, offset, shape))
        self._measure_anchor_bands(rows, cols, [r for r, _ in tone_anchor.references(scale)],
                                   cancelled)

    def prefetch_anchor(self, region: tuple[int, int, int, int],
                        references: tuple[float, ...]) -> None:
        """Measure now, into the anchor cache, the tone anchor's tiles over LR pixels `region`
        (y0, x0, y1, x1; clipped to the photo) at each of `references`: what the idle worker
        does under a photo seen whole, before the first zoom reads them."""
        if not self.model.tone_anchor:
            return
        h, w = self.rgb.shape[:2]
        y0, x0, y1, x1 = max(0, region[0]), max(0, region[1]), min(h, region[2]), min(w, region[3])
        if y0 < y1 and x0 < x1:
            self._measure_anchor_bands(*_anchor_tile_ranges(y0, x0, y1, x1), references)

    def _measure_anchor_bands(self, rows: range, cols: range, references: list[float] | tuple,
                              cancelled: Callable[[], bool] | None = None) -> None:
        """The anchor tiles `rows` x `cols` at each of `references`, from the anchor cache or
        measured into it, in bands of ANCHOR_BAND LR rows; Cancelled between bands if
        `cancelled` says so."""
        band = max(1, ANCHOR_BAND // ANCHOR_TILE)
        appearance = self.appearance

        def measure() -> None:
            with one_thread(), self._render_scope():
                for reference in references:
                    for top in range(rows.start, rows.stop, band):
                        tiles = [(ty, tx) for ty in range(top, min(rows.stop, top + band))
                                 for tx in cols]
                        self._anchor_tiles(tiles, reference, appearance, cancelled)

        self._with_oom_fallback(measure)

    def _measure_tiles(self, tiles: list[tuple[int, int]], reference: float, appearance,
                       hurry: bool = False) -> list[torch.Tensor]:
        """d_r over anchor tiles (ty, tx), in one query: each reads the latents one pixel
        around it, no more, so measuring them together gives each its own values. That ring
        often crosses into the next feature tile. In a `hurry`, no feature tile is encoded
        whole (`features.FeatureTiles.grids`)."""
        t = ANCHOR_TILE
        h, w = self.rgb.shape[:2]
        rects = []
        for ty, tx in tiles:
            y0, x0 = ty * t, tx * t
            rects.append(((y0, x0), (min(h, y0 + t) - y0, min(w, x0 + t) - x0)))
        around = (max(0, min(r[0][0] for r in rects) - 1), max(0, min(r[0][1] for r in rects) - 1),
                  min(h, max(r[0][0] + r[1][0] for r in rects) + 1),
                  min(w, max(r[0][1] + r[1][1] for r in rects) + 1))
        grids = self.features.grids(*around, parts=hurry)
        return tone_anchor.measure_tiles(self.model, grids, rects, (h, w), appearance, reference)

    def _with_oom_fallback(self, work: Callable[[], object]):
        while True:
            try:
                return work()
            except torch.OutOfMemoryError:
                if self.device.type != "cuda":
                    raise
                torch.cuda.empty_cache()
                if self.chunk > 256:
                    self.chunk //= 2
                    continue
                self._move_to_cpu()

    def _move_to_cpu(self) -> None:
        cpu = torch.device("cpu")
        self.model.to(cpu)
        for cache in (self.cache, self.projection_cache, self.anchor_cache):
            cache.discard(lambda key: isinstance(key, tuple) and key[0] == self.name)
        # Back to the CPU's tile sizes (not the whole photo at once), and its choice of
        # keeping projections: a whole-photo block on the GPU kept them whatever their size.
        self.features = self._feature_tiles(cpu)
        self.device = cpu
        self.chunk = self.model.default_chunk
        if self._appearance is not None:
            self._appearance = self._appearance.to(cpu)
        torch.cuda.empty_cache()
        self.notify(f"The GPU ran out of memory; {self.name} continues on the CPU (slower).")
