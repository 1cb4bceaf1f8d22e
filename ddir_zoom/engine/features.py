"""Lazily encoded features of a photo, in tiles, and its appearance embedding.

The encoders are convolutional, so the features of a tile encoded with `model.halo` pixels of
context (zero padding only at the real image border) equal the whole image's features there.
Two things are cached, in LRUs bounded in bytes and shared by all models of an engine:

- the encoders' features, per tile of 128 or 192 LR pixels (with a ring of one pixel), in the
  feature cache: encoding is the expensive part, and features are 4 to 8 times smaller than
  the projections below (a paper-size DDIR: 512 bytes per LR pixel against 2 KB), so four times
  as much of a photo stays encoded;
- what decoding reads, each decoder's first-layer projections (`LocalImplicitDecoder.project`,
  a 3x3 convolution of the features, cheap), per block of 64 LR pixels, in the smaller
  projection cache: only the blocks under the tiles being decoded need to be there.

Neither depends on the zoom, so panning and zooming reuse them. A model whose projections of a
view would outgrow the projection cache (the paper-size models: 1 to 2 KB per LR pixel) keeps
its blocks only for the render that made them (`keep_projections` False), in smaller blocks
(RENDER_BLOCK): in the shared cache they evicted one another, and a first pass's, before they
were read again, and were projected four times over. A render's tone anchor and its own
region then share them.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable

import numpy as np
import torch

from ddir_zoom.engine.lru import ByteLRU
from ddir_zoom.models.base import ImplicitSR
from ddir_zoom.models.implicit import LatentGrid
from ddir_zoom.parallel import run_pieces

EXACT_EMBEDDING_MAX_PIXELS = 1_000_000
"""Up to this many pixels the appearance embedding is the exact mean of F_sr over the whole
photo. Beyond it, the mean over ESTIMATE_GRID x ESTIMATE_GRID windows of ESTIMATE_WINDOW pixels
spread evenly over the photo (their features exact, halo included): a fixed, deterministic
estimate that, like the training-time crop mean, summarises the photo's appearance."""
ESTIMATE_GRID = 4
ESTIMATE_WINDOW = 128


def tensor_bytes(value: dict[str, torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in value.values())


def to_tensor(rgb: np.ndarray, device: torch.device) -> torch.Tensor:
    """(h, w, 3) float32 array -> (1, 3, h, w) tensor on `device`."""
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].to(device)


def feature_bytes_per_pixel(model: ImplicitSR) -> int:
    """Bytes the cached features of `model` take per LR pixel (float32, every encoder)."""
    return 4 * sum(e.out_dim for e in model.encoders.values())


def projection_bytes_per_pixel(model: ImplicitSR) -> int:
    """Bytes the first-layer projections of `model` take per LR pixel (float32, every
    decoder)."""
    return 4 * sum(d.hidden[0] for d in model.decoders.values())


PROJECTION_BLOCK = 64
"""LR pixels per side of a projection block (it divides the feature tile sizes 128 and 192)."""
RENDER_BLOCK = 32
"""The block side of a model that keeps its projections for one render only: what a render
reads of its blocks is then 1.3 to 1.7 times its region at x1.5, not 2 to 3 times."""
RENDER_PROJECTION_BYTES = 512 << 20
"""A bound on what one render of such a model holds (a 1280 x 800 view's tile of the paper-size
DDIR at x1.5, tone anchor's margin included, holds about 120 MB)."""

# A request in a hurry (`parts`: the first refined tile of a view, which the user waits for)
# encodes no feature tile whole. What it reads of tiles not yet encoded is projected from
# features encoded for that rectangle alone, one part for all of them: at x1.5 a first tile and
# the tone anchor's margin read about a quarter of the four feature tiles under them, at x4 a
# third of one. A part costs more per pixel (its own encoder halo) and is not cached (the tiles
# after the first encode whole tiles, which later views reuse); it is held until `end_render`, so
# that the requests of the same hurry (the anchor at two reference scales, then the render's
# smaller region) compute it once.


SLIVER = 2
"""A region that reads at most this many rows or columns of a feature tile not yet encoded
(the tone anchor's one-pixel ring around its tiles, where it crosses a feature tile's edge)
takes them from a part (`FeatureTiles._project_part`, along the whole tile, kept with the
projections) instead of encoding the whole tile for them: at x1.5 a 1280 x 800 view's anchor
read two whole columns of feature tiles, a fifth of its encoding, for one LR column each."""


def _contains(outer: tuple[int, int, int, int], inner: tuple[int, int, int, int]) -> bool:
    return (outer[0] <= inner[0] and outer[1] <= inner[1] and inner[2] <= outer[2]
            and inner[3] <= outer[3])


def _overlap(iy: int, ix: int, side: int, y0: int, x0: int, y1: int, x1: int
             ) -> tuple[int, int, int, int]:
    """The part (y0, x0, y1, x1) of LR pixels [y0, y1) x [x0, x1) in square (iy, ix) of a grid
    of `side` pixels (a feature tile or a projection block)."""
    return (max(y0, iy * side), max(x0, ix * side), min(y1, (iy + 1) * side),
            min(x1, (ix + 1) * side))


class FeatureTiles:
    """Encoder features of one model over one photo, encoded tile by tile on demand, and the
    decoders' first-layer projections of them, computed block by block on demand.

    rgb: the photo, float32 (h, w, 3). cache: shared LRU for the features; projections: shared
    LRU for the projections (default: `cache`); `key` tells this model's entries apart.
    tile: LR pixels per feature tile side (default: 128, or 192 for models whose halo exceeds
    32, so the halo costs 1.4x (compact) to 1.9x (paper) the tile's own pixels).
    block: projection block side (default: see `block`); it must divide `tile`.
    keep_projections: False to keep the blocks only until `end_render`, not in `projections`
    (see the module's doc).
    """

    def __init__(self, model: ImplicitSR, rgb: np.ndarray, device: torch.device, cache: ByteLRU,
                 key: str, tile: int | None = None, projections: ByteLRU | None = None,
                 block: int | None = None, keep_projections: bool = True) -> None:
        self.model = model
        self.rgb = rgb
        self.size = rgb.shape[:2]
        self.device = device
        self.cache = cache
        self.keep_projections = keep_projections
        if keep_projections:
            self.projections = projections if projections is not None else cache
        else:
            self.projections = ByteLRU(RENDER_PROJECTION_BYTES, tensor_bytes)
        self.key = key
        self.halo = model.halo
        self.tile = tile or (128 if self.halo <= 32 else 192)
        if block is not None and self.tile % block:
            raise ValueError(f"the projection block ({block}) must divide the tile ({self.tile})")
        self._block = block
        self._lock = threading.Lock()
        self._count_lock = threading.Lock()  # tiles and blocks are computed side by side
        self.tiles_encoded = 0  # for tests and benchmarks: how much encoding happened
        self.blocks_projected = 0  # and how much projecting
        self.parts_projected = 0  # and how many parts in a hurry
        # The latest part in a hurry: ((y0, x0, y1, x1), its projections), until `end_render`.
        self._part: tuple[tuple[int, int, int, int], dict[str, torch.Tensor]] | None = None

    @property
    def grid_shape(self) -> tuple[int, int]:
        return math.ceil(self.size[0] / self.tile), math.ceil(self.size[1] / self.tile)

    @property
    def block(self) -> int:
        """Projection block side: PROJECTION_BLOCK where it divides the tile, else the tile, so
        that a block and the ring of features it needs lie in one feature tile."""
        if self._block is not None:
            return self._block
        side = PROJECTION_BLOCK if self.keep_projections else RENDER_BLOCK
        return side if self.tile % side == 0 else self.tile

    @property
    def bytes_per_pixel(self) -> int:
        """Bytes a cached feature tile takes per LR pixel (float32)."""
        return feature_bytes_per_pixel(self.model)

    def _tile_key(self, ty: int, tx: int) -> tuple:
        return (self.key, ty, tx)

    def _tile_bounds(self, ty: int, tx: int) -> tuple[int, int, int, int]:
        """LR pixels (y0, x0, y1, x1) a feature tile stores: the tile and a ring of one pixel
        (what the 3x3 unfolding of its edge reads), clipped to the photo."""
        t = self.tile
        return (max(0, ty * t - 1), max(0, tx * t - 1), min(self.size[0], (ty + 1) * t + 1),
                min(self.size[1], (tx + 1) * t + 1))

    def _encode(self, ty: int, tx: int) -> dict[str, torch.Tensor]:
        """Encode tile (ty, tx) with its halo, cache it and return it. Always the same crop for
        the same tile, so a tile's values never depend on what else was encoded or cached."""
        y0, x0, y1, x1 = self._tile_bounds(ty, tx)
        # The halo covers the receptive field of the ring's features as well.
        context = self.halo - 1
        top, left = max(0, y0 - context), max(0, x0 - context)
        bottom, right = min(self.size[0], y1 + context), min(self.size[1], x1 + context)
        with torch.inference_mode():
            lr = to_tensor(self.rgb[top:bottom, left:right], self.device)
            features = self.model.encode(lr)
        tile = {branch: f[:, :, y0 - top:y1 - top, x0 - left:x1 - left].contiguous(
                    memory_format=torch.channels_last)
                for branch, f in features.items()}
        self.cache.put(self._tile_key(ty, tx), tile)
        with self._count_lock:
            self.tiles_encoded += 1
        return tile

    def _tile_of_block(self, by: int, bx: int) -> tuple[int, int]:
        return by * self.block // self.tile, bx * self.block // self.tile

    def _project(self, by: int, bx: int, features: dict[str, torch.Tensor]
                 ) -> dict[str, torch.Tensor]:
        """Projections of block (by, bx), from `features`, those of its feature tile: the
        block and its ring, projected with zero padding, the ring then cut off (where the
        padding stood for pixels, not the photo's border)."""
        b = self.block
        fy0, fx0, _, _ = self._tile_bounds(*self._tile_of_block(by, bx))
        y0, x0 = by * b, bx * b
        y1, x1 = min(self.size[0], y0 + b), min(self.size[1], x0 + b)
        ry0, rx0 = max(0, y0 - 1), max(0, x0 - 1)
        ry1, rx1 = min(self.size[0], y1 + 1), min(self.size[1], x1 + 1)
        with torch.inference_mode():
            ring = {branch: f[:, :, ry0 - fy0:ry1 - fy0, rx0 - fx0:rx1 - fx0]
                    for branch, f in features.items()}
            projected = self.model.project(ring)
        block = {branch: p[:, y0 - ry0:y1 - ry0, x0 - rx0:x1 - rx0].contiguous()
                 for branch, p in projected.items()}
        self.projections.put((self.key, "projection", by, bx), block)
        with self._count_lock:
            self.blocks_projected += 1
        return block

    def _tile_range(self, y0: int, x0: int, y1: int, x1: int, t: int
                    ) -> tuple[int, int, int, int]:
        return (max(0, y0 // t), max(0, x0 // t),
                min(math.ceil(self.size[0] / t), (y1 - 1) // t + 1),
                min(math.ceil(self.size[1] / t), (x1 - 1) // t + 1))

    def ensure(self, y0: int, x0: int, y1: int, x1: int,
               cancelled: Callable[[], bool] | None = None, parts: bool = False) -> bool:
        """Encode the missing feature tiles that cover LR pixels [y0, y1) x [x0, x1); with
        `parts` (a hurry), none: `grids` computes what it reads. Returns False if `cancelled`
        said so between tiles."""
        if not parts:
            ty0, tx0, ty1, tx1 = self._tile_range(y0, x0, y1, x1, self.tile)
            with self._lock:
                self._encode_tiles([(ty, tx) for ty in range(ty0, ty1)
                                    for tx in range(tx0, tx1)
                                    if self._tile_key(ty, tx) not in self.cache], cancelled)
        return cancelled is None or not cancelled()

    def _encode_tiles(self, tiles: list[tuple[int, int]],
                      cancelled: Callable[[], bool] | None = None
                      ) -> dict[tuple[int, int], dict[str, torch.Tensor]]:
        """Encode feature tiles (ty, tx) side by side, a thread each (`ddir_zoom.parallel`):
        faster than each on every thread; a single tile uses every thread. Tiles not started
        when `cancelled` says so are skipped. Returns the features of those encoded."""
        encoded = {}

        def encode(index: int) -> None:
            if cancelled is None or not cancelled():
                encoded[tiles[index]] = self._encode(*tiles[index])

        run_pieces(encode, len(tiles), self.device)
        return encoded

    def _project_part(self, y0: int, x0: int, y1: int, x1: int) -> dict[str, torch.Tensor]:
        """Projections over LR pixels [y0, y1) x [x0, x1), from features encoded for them and
        their ring alone (with the halo's context, as `_encode`), not cached: a part in a
        hurry (see `grids`)."""
        h, w = self.size
        fy0, fx0, fy1, fx1 = max(0, y0 - 1), max(0, x0 - 1), min(h, y1 + 1), min(w, x1 + 1)
        context = self.halo - 1
        top, left = max(0, fy0 - context), max(0, fx0 - context)
        bottom, right = min(h, fy1 + context), min(w, fx1 + context)
        with torch.inference_mode():
            features = self.model.encode(to_tensor(self.rgb[top:bottom, left:right],
                                                   self.device))
            ring = {branch: f[:, :, fy0 - top:fy1 - top, fx0 - left:fx1 - left]
                    for branch, f in features.items()}
            projected = self.model.project(ring)
        with self._count_lock:
            self.parts_projected += 1
        return {branch: p[:, y0 - fy0:y1 - fy0, x0 - fx0:x1 - fx0].contiguous()
                for branch, p in projected.items()}

    def _sliver(self, tile: tuple[int, int], read: tuple[int, int, int, int]
                ) -> tuple[int, int, int, int]:
        """The part that stands for `read`, a sliver of feature tile `tile` (see SLIVER): the
        same rows or columns across the whole tile, so that the next requests along that edge
        (a view's other tiles) find it held."""
        t = self.tile
        y0, x0, y1, x1 = read
        if x1 - x0 <= SLIVER:
            return tile[0] * t, x0, min(self.size[0], (tile[0] + 1) * t), x1
        return y0, tile[1] * t, y1, min(self.size[1], (tile[1] + 1) * t)

    def end_render(self) -> None:
        """Drop what a render held: the part of a hurry (see `grids`) and the blocks of a
        model that does not keep its projections."""
        with self._lock:
            self._part = None
            if not self.keep_projections:
                self.projections.clear()

    def grids(self, y0: int, x0: int, y1: int, x1: int, parts: bool = False
              ) -> dict[str, LatentGrid]:
        """Projections covering LR pixels [y0, y1) x [x0, x1) (clipped to the photo), one
        LatentGrid per branch: the block itself when one block holds the region, else the
        region cut from its blocks. Blocks and tiles not in the caches are computed and used
        directly, so the result is right even when the caches cannot hold them all; a block's
        values are always computed from the same features the same way, so they do not depend
        on what was cached. With `parts` (a hurry), what the region reads of feature tiles
        not encoded is one part, computed alone or taken from the part held since an earlier
        request of the same hurry (see `end_render`); the grid may then extend past the
        region. Without, a sliver of a tile not encoded (SLIVER) is a part of its own, kept
        with the projections."""
        y0, x0 = max(0, y0), max(0, x0)
        y1, x1 = min(self.size[0], y1), min(self.size[1], x1)
        b = self.block
        by0, bx0, by1, bx1 = self._tile_range(y0, x0, y1, x1, b)
        with self._lock:
            # (by, bx) -> (projections, their LR origin): the whole block, or in a hurry the
            # part that holds what the region reads of it.
            blocks = {}
            for by in range(by0, by1):
                for bx in range(bx0, bx1):
                    block = self.projections.get((self.key, "projection", by, bx))
                    blocks[(by, bx)] = None if block is None else (block, (by * b, bx * b))
            missing = [key for key, block in blocks.items() if block is None]
            # The feature tiles under the missing blocks, each encoded once and held here, so
            # that a tight cache cannot evict one before its blocks are projected.
            features = {tile: self.cache.get(self._tile_key(*tile))
                        for tile in {self._tile_of_block(*key) for key in missing}}
            uncached = [tile for tile, value in features.items() if value is None]
            reads = {tile: _overlap(*tile, self.tile, y0, x0, y1, x1) for tile in uncached}
            # tile -> the rect of the part that stands for it (see SLIVER, and `parts`).
            stand_ins: dict[tuple[int, int], tuple[int, int, int, int]] = {}
            if parts and uncached:
                rect = (min(r[0] for r in reads.values()), min(r[1] for r in reads.values()),
                        max(r[2] for r in reads.values()), max(r[3] for r in reads.values()))
                if self._part is not None and _contains(self._part[0], rect):
                    rect = self._part[0]
                stand_ins = dict.fromkeys(uncached, rect)
            elif uncached:
                stand_ins = {tile: self._sliver(tile, rect) for tile, rect in reads.items()
                             if min(rect[2] - rect[0], rect[3] - rect[1]) <= SLIVER}
                features.update(self._encode_tiles(
                    [tile for tile in uncached if tile not in stand_ins]))
            whole = [key for key in missing if features[self._tile_of_block(*key)] is not None]
            made = {} if self._part is None else {self._part[0]: self._part[1]}
            for rect in set(stand_ins.values()) - set(made):
                held = self.projections.get((self.key, "sliver", *rect))
                if held is not None:
                    made[rect] = held
            rects = sorted(set(stand_ins.values()) - set(made))
            done = {}

            def project(index: int) -> None:
                if index < len(whole):
                    key = whole[index]
                    done[key] = (self._project(*key, features[self._tile_of_block(*key)]),
                                 (key[0] * b, key[1] * b))
                else:
                    rect = rects[index - len(whole)]
                    made[rect] = self._project_part(*rect)

            # Side by side; a part alone (a view's first tile, cold) uses every core.
            run_pieces(project, len(whole) + len(rects), self.device)
            if parts and uncached:
                self._part = (rect, made[rect])
            else:
                for rect in rects:
                    self.projections.put((self.key, "sliver", *rect), made[rect])
            for key in missing:  # its block's projections, or its part's (values, origin)
                if key not in done:
                    rect = stand_ins[self._tile_of_block(*key)]
                    done[key] = (made[rect], rect[:2])
                blocks[key] = done[key]
        if by1 - by0 == 1 and bx1 - bx0 == 1:
            # One block holds the region: decode straight from it, no copy.
            values, origin = blocks[(by0, bx0)]
            return {k: LatentGrid(v, origin) for k, v in values.items()}
        grids = {}
        for branch in blocks[(by0, bx0)][0]:
            rows = []
            for by in range(by0, by1):
                row = []
                for bx in range(bx0, bx1):
                    values, (oy, ox) = blocks[(by, bx)]
                    ny0, nx0, ny1, nx1 = _overlap(by, bx, b, y0, x0, y1, x1)
                    row.append(values[branch][:, ny0 - oy:ny1 - oy, nx0 - ox:nx1 - ox])
                rows.append(torch.cat(row, dim=2))
            grids[branch] = LatentGrid(torch.cat(rows, dim=1), (y0, x0))
        return grids


def appearance_embedding(model: ImplicitSR, rgb: np.ndarray, device: torch.device
                         ) -> torch.Tensor | None:
    """The model's appearance embedding (1, C) for the whole photo, or None if it has none.

    Exact (the mean of F_sr over the photo) up to EXACT_EMBEDDING_MAX_PIXELS, else the fixed
    estimate described there. Deterministic: the same photo always gets the same embedding.
    """
    if not model.has_appearance_embedding:
        return None

    name = model.feature_of["sr"]

    def encoder(lr: torch.Tensor) -> torch.Tensor:
        return model.encode(lr, (name,))[name]

    h, w = rgb.shape[:2]
    halo = model.encoders[name].receptive_radius
    with torch.inference_mode():
        if h * w <= EXACT_EMBEDDING_MAX_PIXELS:
            return model.appearance_embedding(model.encode(to_tensor(rgb, device), (name,)))
        total = None
        count = 0
        win = min(ESTIMATE_WINDOW, h, w)
        for i in range(ESTIMATE_GRID):
            for j in range(ESTIMATE_GRID):
                cy = (i + 0.5) * h / ESTIMATE_GRID
                cx = (j + 0.5) * w / ESTIMATE_GRID
                y0 = min(h - win, max(0, round(cy - win / 2)))
                x0 = min(w - win, max(0, round(cx - win / 2)))
                top, left = max(0, y0 - halo), max(0, x0 - halo)
                crop = rgb[top:min(h, y0 + win + halo), left:min(w, x0 + win + halo)]
                features = encoder(to_tensor(crop, device))
                inner = features[:, :, y0 - top:y0 - top + win, x0 - left:x0 - left + win]
                part = inner.sum(dim=(2, 3))
                total = part if total is None else total + part
                count += win * win
        return total / count
