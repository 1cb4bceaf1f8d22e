"""The engine: one open photo, the methods that render it, and the caches they share.

The viewer, the command line, export and the benchmarks all render through `Engine.render_region`,
so they all show the same pixels.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ddir_zoom.engine.features import tensor_bytes
from ddir_zoom.engine.lru import ByteLRU
from ddir_zoom.engine.methods import BicubicMethod, NeuralMethod, RenderMethod, Scale
from ddir_zoom.engine.source import PhotoSource
from ddir_zoom.imaging.io import DEFAULT_MAX_PIXELS, Photo, load_photo
from ddir_zoom.imaging.resample import resample_region
from ddir_zoom.models import ImplicitSR, load_checkpoint, pick_device
from ddir_zoom.models.precision import resolve as resolve_precision
from ddir_zoom.threads import COMPUTE

DEFAULT_FEATURE_CACHE_BYTES = 768 << 20
"""Encoder features kept per open photo (all models together): 768 MiB. A 1280 x 800 view at
x1.5 reads up to 24 feature tiles of the paper-size DDIR (460 MB) and 60 of its first pass
(260 MB); with 512 MiB the two evicted each other's tiles and a warm view was encoded again
(benchmarks/viewport.py: 123 s warm against 114 s cold)."""
DEFAULT_PROJECTION_CACHE_BYTES = 160 << 20
"""First-layer projections kept per open photo (all models together): 160 MiB, the blocks
under a 1280 x 800 view of the first pass at x1.5 (256 bytes per LR pixel, 0.45 megapixels of
LR with the tone anchor's margin). A block evicted is projected again from its features in
milliseconds, but with 128 MiB the view's own blocks evicted each other (least recently used
order, a working set just over the size) and a warm view projected 117 of them again: 1.58
against 1.26 s (/tmp scratch runs, two threads; benchmarks/viewport.py has the figures). A
larger window at low zoom still outgrows it. Models whose projections of such a view could not
fit (the paper-size ones) keep theirs for one render only (`NeuralMethod.keep_projections`):
when they shared this cache they evicted the first pass's blocks, and the viewer's first pass
at x1.5 took 1.9-2.6 s warm against 1.3 s for the student alone."""
DEFAULT_ANCHOR_CACHE_BYTES = 64 << 20
"""Tone-anchor correction tiles kept per open photo (12 bytes per LR pixel and reference
scale: 64 MiB hold five million LR pixels). They cost as much to compute as a quarter of a view
and are tiny, so they have their own LRU: in the feature cache, feature tiles evicted them and a
warm view at x1.5 computed them again (benchmarks/viewport.py, paper-size DDIR at x1.5: 115 s
warm against 128 s cold; with this cache and the other changes of that commit, 22.7 s)."""


def first_pass_name(method: str) -> str:
    """The engine's name for the first pass of `method` (its tiles are cached under it)."""
    return f"{method} (first pass)"


def as_scale(scale: float | tuple[float, float]) -> Scale:
    if isinstance(scale, int | float):
        return float(scale), float(scale)
    return float(scale[0]), float(scale[1])


class Engine:
    """Renders one photo with any of its methods ('bicubic' always; models added by name).

    device: None or 'auto' for CUDA, then MPS, then CPU; or a torch device string.
    notify: called with a sentence for the user when something they should know happens (a GPU
    out of memory, say); from the rendering thread.
    """

    def __init__(self, photo: Photo, device: str | torch.device | None = None,
                 feature_cache_bytes: int = DEFAULT_FEATURE_CACHE_BYTES,
                 projection_cache_bytes: int = DEFAULT_PROJECTION_CACHE_BYTES,
                 anchor_cache_bytes: int = DEFAULT_ANCHOR_CACHE_BYTES,
                 notify: Callable[[str], None] | None = None,
                 precision: str = "float32") -> None:
        self.photo = photo
        self.source = PhotoSource(photo)
        self.device = device if isinstance(device, torch.device) else pick_device(device)
        self.feature_cache = ByteLRU(feature_cache_bytes, tensor_bytes)
        self.projection_cache = ByteLRU(projection_cache_bytes, tensor_bytes)
        self.anchor_cache = ByteLRU(anchor_cache_bytes, tensor_bytes)
        self.notify = notify or (lambda message: None)
        # Decoding precision of every model (`models.precision`); float32 is exact. A first
        # pass, replaced by its method's own pixels, decodes in bfloat16 wherever that is
        # native.
        self.precision, message = resolve_precision(precision, self.device)
        if message:
            self.notify(message)
        self._first_pass_precision, _ = resolve_precision("bfloat16", self.device)
        self.methods: dict[str, RenderMethod] = {"bicubic": BicubicMethod(photo.rgb)}
        # Fast models that show a view first while a slow one refines it (see `add_model`),
        # by their own names (`first_pass_name`): methods too, not offered to the user.
        self.first_passes: dict[str, NeuralMethod] = {}

    @classmethod
    def open(cls, path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS,
             **kwargs) -> Engine:
        return cls(load_photo(path, max_pixels=max_pixels), **kwargs)

    @property
    def size(self) -> tuple[int, int]:
        return self.source.size

    @property
    def caches(self) -> tuple[ByteLRU, ...]:
        """The caches the models share: features, projections, tone-anchor tiles."""
        return self.feature_cache, self.projection_cache, self.anchor_cache

    def clear_caches(self) -> None:
        """Forget every model's cached work (as on a freshly opened photo)."""
        for cache in self.caches:
            cache.clear()

    def add_model(self, name: str, model: ImplicitSR | str | os.PathLike,
                  first_pass: ImplicitSR | str | os.PathLike | None = None) -> NeuralMethod:
        """Make a model available as method `name`; `model` may be a checkpoint path.

        first_pass: a fast model (a distilled student) that the progressive renderer shows
        first, tile by tile, while `model` refines the view; exports use `model` alone.
        """
        method = self._neural(name, model, self.precision)
        self.first_passes.pop(first_pass_name(name), None)
        if first_pass:
            self.first_passes[first_pass_name(name)] = self._neural(
                first_pass_name(name), first_pass, self._first_pass_precision)
        self.methods[name] = method
        return method

    def _neural(self, name: str, model: ImplicitSR | str | os.PathLike, precision: str
                ) -> NeuralMethod:
        if not isinstance(model, ImplicitSR):
            model, _ = load_checkpoint(Path(model), device="cpu")
        model.set_precision(precision)
        return NeuralMethod(name, model, self.photo.rgb, self.device, self.feature_cache,
                            self.notify, projection_cache=self.projection_cache,
                            anchor_cache=self.anchor_cache)

    def first_pass(self, name: str) -> str | None:
        """The name of method `name`'s first pass, if it has one."""
        return first_pass_name(name) if first_pass_name(name) in self.first_passes else None

    def method(self, name: str) -> RenderMethod:
        method = self.methods.get(name) or self.first_passes.get(name)
        if method is None:
            raise KeyError(f"no method {name!r} (available: {', '.join(self.methods)})")
        return method

    def render_region(self, method: str, scale: float | tuple[float, float],
                      offset: tuple[float, float], shape: tuple[int, int],
                      cancelled: Callable[[], bool] | None = None, hurry: bool = False
                      ) -> np.ndarray:
        """Pixels [oy, oy + h) x [ox, ox + w) of the photo rendered at `scale` with `method`:
        float32 (h, w, 3) in [0, 1]. Pixels past the photo's edge repeat its border. `hurry`:
        wanted as soon as possible, at some extra work (`RenderMethod.render`)."""
        with COMPUTE:  # one tile at a time in the process (see ddir_zoom.threads)
            return self.method(method).render(as_scale(scale), offset, shape, cancelled,
                                              hurry)

    def measure_anchor(self, method: str, scale: float | tuple[float, float],
                       offset: tuple[float, float], shape: tuple[int, int],
                       cancelled: Callable[[], bool] | None = None) -> None:
        """Measure now the tone anchor that renders of this rectangle (a view) with `method`
        will read, in large queries (`NeuralMethod.measure_anchor`), if `method` is a model
        that keeps its projections (a first pass: the paper-size models' bands would hold
        hundreds of megabytes of projections); nothing otherwise."""
        neural = self.method(method)
        if isinstance(neural, NeuralMethod) and neural.keep_projections:
            with COMPUTE:
                neural.measure_anchor(as_scale(scale), offset, shape, cancelled)

    def render_alpha(self, scale: float | tuple[float, float], offset: tuple[float, float],
                     shape: tuple[int, int]) -> np.ndarray | None:
        """The photo's alpha over the same rectangle (bicubic, or area at scales up to 1)."""
        if self.photo.alpha is None:
            return None
        scale = as_scale(scale)
        method = "area" if max(scale) <= 1.0 else "bicubic"
        return np.clip(resample_region(self.photo.alpha, scale, offset, shape, method), 0, 1)
