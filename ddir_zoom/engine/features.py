"""Lazily encoded features of a photo, in tiles, and its appearance embedding.

The encoders are convolutional, so the features of a tile encoded with `model.halo` pixels of
context (zero padding only at the real image border) equal the whole image's features there.
What is cached is not the features but what decoding reads: each decoder's first-layer
projections (`LocalImplicitDecoder.project`), per tile of TILE x TILE LR pixels, in an LRU bounded
in bytes and shared by all models of an engine. Tiles do not depend on the zoom, so panning and
zooming reuse them.
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


class FeatureTiles:
    """First-layer projections of one model over one photo, encoded tile by tile on demand.

    rgb: the photo, float32 (h, w, 3). cache: shared LRU; `key` tells this model's tiles apart.
    tile: LR pixels per tile side (default: 128, or 192 for models whose halo exceeds 32, so the
    halo costs 1.4x (compact) to 1.9x (paper) the tile's own pixels).
    """

    def __init__(self, model: ImplicitSR, rgb: np.ndarray, device: torch.device, cache: ByteLRU,
                 key: str, tile: int | None = None) -> None:
        self.model = model
        self.rgb = rgb
        self.size = rgb.shape[:2]
        self.device = device
        self.cache = cache
        self.key = key
        self.halo = model.halo
        self.tile = tile or (128 if self.halo <= 32 else 192)
        self.grid_shape = (math.ceil(self.size[0] / self.tile), math.ceil(self.size[1] / self.tile))
        self._lock = threading.Lock()
        self.tiles_encoded = 0  # for tests and benchmarks: how much encoding happened

    def _tile_key(self, ty: int, tx: int) -> tuple:
        return (self.key, ty, tx)

    def _encode(self, ty: int, tx: int) -> dict[str, torch.Tensor]:
        """Encode tile (ty, tx) with its halo, cache it and return it. Always the same crop for
        the same tile, so a tile's values never depend on what else was encoded or cached."""
        t, halo = self.tile, self.halo
        y0, x0 = ty * t, tx * t
        y1, x1 = min(self.size[0], y0 + t), min(self.size[1], x0 + t)
        top, left = max(0, y0 - halo), max(0, x0 - halo)
        bottom, right = min(self.size[0], y1 + halo), min(self.size[1], x1 + halo)
        with torch.inference_mode():
            lr = to_tensor(self.rgb[top:bottom, left:right], self.device)
            projections = self.model.project(self.model.encode(lr))
        tile = {branch: p[:, y0 - top:y1 - top, x0 - left:x1 - left].contiguous()
                for branch, p in projections.items()}
        self.cache.put(self._tile_key(ty, tx), tile)
        self.tiles_encoded += 1
        return tile

    def _tile_range(self, y0: int, x0: int, y1: int, x1: int) -> tuple[int, int, int, int]:
        t = self.tile
        return (max(0, y0 // t), max(0, x0 // t), min(self.grid_shape[0], (y1 - 1) // t + 1),
                min(self.grid_shape[1], (x1 - 1) // t + 1))

    def ensure(self, y0: int, x0: int, y1: int, x1: int,
               cancelled: Callable[[], bool] | None = None) -> bool:
        """Encode the missing tiles that cover LR pixels [y0, y1) x [x0, x1). Returns False if
        `cancelled` said so between tiles."""
        ty0, tx0, ty1, tx1 = self._tile_range(y0, x0, y1, x1)
        for ty in range(ty0, ty1):
            for tx in range(tx0, tx1):
                if cancelled is not None and cancelled():
                    return False
                with self._lock:
                    if self._tile_key(ty, tx) not in self.cache:
                        self._encode(ty, tx)
        return True

    def grids(self, y0: int, x0: int, y1: int, x1: int) -> dict[str, LatentGrid]:
        """Projections covering LR pixels [y0, y1) x [x0, x1) (clipped to the photo), one
        LatentGrid per branch: the tile itself when one tile holds the region, else the region
        cut from its tiles. Tiles not in the cache are encoded and used directly, so the result
        is right even when the cache cannot hold them all."""
        y0, x0 = max(0, y0), max(0, x0)
        y1, x1 = min(self.size[0], y1), min(self.size[1], x1)
        ty0, tx0, ty1, tx1 = self._tile_range(y0, x0, y1, x1)
        tiles = {}
        with self._lock:
            for ty in range(ty0, ty1):
                for tx in range(tx0, tx1):
                    tile = self.cache.get(self._tile_key(ty, tx))
                    tiles[(ty, tx)] = tile if tile is not None else self._encode(ty, tx)
        t = self.tile
        if ty1 - ty0 == 1 and tx1 - tx0 == 1:
            # One tile holds the region: decode straight from it, no copy.
            return {b: LatentGrid(v, (ty0 * t, tx0 * t)) for b, v in tiles[(ty0, tx0)].items()}
        grids = {}
        for branch in tiles[(ty0, tx0)]:
            rows = []
            for ty in range(ty0, ty1):
                r0, r1 = max(y0, ty * t) - ty * t, min(y1, (ty + 1) * t) - ty * t
                rows.append(torch.cat([
                    tiles[(ty, tx)][branch][:, r0:r1, max(x0, tx * t) - tx * t:
                                            min(x1, (tx + 1) * t) - tx * t]
                    for tx in range(tx0, tx1)], dim=2))
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

    def encoder(lr: torch.Tensor) -> torch.Tensor:
        return model.encode(lr, ("sr",))["sr"]

    h, w = rgb.shape[:2]
    halo = model.encoders["sr"].receptive_radius
    with torch.inference_mode():
        if h * w <= EXACT_EMBEDDING_MAX_PIXELS:
            return model.appearance_embedding(model.encode(to_tensor(rgb, device), ("sr",)))
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
