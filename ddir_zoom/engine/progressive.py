"""Progressive rendering of views: an immediate frame, then refined tiles, centre first.

`request(view, method)` returns at once with a frame made from what is at hand: refined tiles
already cached at this scale, over a resample of the previous frame (when it covers the view at
a nearby scale) or of the photo's pyramid. A single long-lived worker thread, which alone runs
the models, then refines the view's missing TILE x TILE tiles nearest the centre first (a tile
at the view's edge only as far as the view shows it) and hands each to `on_tile` as it
completes, once the view has settled for SETTLE_S (during a zoom drag the GUI thread's
immediate frames have the cores to themselves).

Every request carries a generation number. A newer request (or `cancel`) makes the worker drop
the older one's outstanding tiles; generation checks and deliveries happen under one lock that
`request` also takes, so once `request` has returned no tile of an older view is delivered.
Refined tiles are cached per method, scale and position (bounded in bytes), so returning to a
view, or panning over refined ground, is instant.

A method may have a first pass (`Engine.add_model(..., first_pass=)`): a fast model, such as a
student distilled from a slow one, whose tiles come first (`TileUpdate.final` False) so that a
view turns sharp within a second or two, and are then replaced by the method's own. Progress
(`done`, `total`) and `on_finished` count the method's own tiles only, and only those are what
an export shows.

When it has nothing to refine, the worker prefetches: it encodes the feature tiles under the
latest view of each neural method shown, nearest the centre first, up to half the feature cache,
one tile at a time so that a new request waits at most one tile. Zooming into a photo first seen
whole then starts from cached features. Under a photo seen whole (or smaller), it then measures
the tone anchor of the models that keep their projections (a first pass) at the references a
first zoom to x3 reads (PREFETCH_ANCHOR_REFERENCES), over the same feature tiles, up to half
the anchor cache: such a zoom then finds its anchor measured too.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ddir_zoom.engine.engine import Engine, first_pass_name
from ddir_zoom.engine.lru import ByteLRU
from ddir_zoom.engine.methods import ANCHOR_BYTES_PER_PIXEL, Cancelled, NeuralMethod
from ddir_zoom.engine.source import BACKGROUND, sample_view
from ddir_zoom.engine.view import View, tile_rect, visible_tiles
from ddir_zoom.imaging.io import to_uint8
from ddir_zoom.memory import release
from ddir_zoom.threads import COMPUTE

DEFAULT_TILE_CACHE_BYTES = 256 << 20
PREFETCH_ANCHOR_REFERENCES = (1.5, 3.0)
"""The tone anchor's reference scales prefetched under a photo seen whole: all that a first
zoom to x3 reads, half of what one to x3-x8 does (benchmarks/first_zoom.py measures it)."""
SETTLE_S = 0.03
"""The worker starts refining this long after the latest request: during a drag (a request
every frame) it stays out of the way of the immediate frames."""
TRIM_AFTER_S = 0.25
"""The heap is also trimmed (`memory.release`) after a tile that took this long: the paper-size
model's tiles leave large freed temporaries between cached tensors, and a long view piled them
up before its end; a trim costs milliseconds, nothing next to such a tile."""
NEARBY_SCALE = 2.0
"""The previous frame is reused for the immediate frame of a view whose scale is within this
factor of it (and that it covers)."""


@dataclass
class Frame:
    """What `request` returns: the immediate picture of the view and the work still to do."""

    generation: int
    view: View
    method: str
    image: np.ndarray  # uint8 (H, W, 3)
    pending: list[tuple[int, int]]  # tiles still to refine, in the order they will come
    total: int  # tiles of the view that hold photo pixels
    channel: int = 0


@dataclass
class TileUpdate:
    """One refined tile, in screen pixels of its request's view."""

    generation: int
    tile: tuple[int, int]
    rect: tuple[int, int, int, int]  # (y, x, h, w) on screen, clipped to the viewport
    pixels: np.ndarray  # uint8 (h, w, 3)
    done: int  # refined tiles of this view so far (cached ones included)
    total: int
    channel: int = 0
    final: bool = True  # False for a first pass's tile, which the method's own will replace


@dataclass
class _Job:
    generation: int
    channel: int
    view: View
    method: str
    pending: list[tuple[str, tuple[int, int]]]  # (method or its first pass, tile), in order
    done: int
    total: int
    started: bool = False  # a tile of it was rendered (the first goes in a hurry)
    anchored: set[str] = field(default_factory=set)  # methods whose anchor it measured


@dataclass(frozen=True)
class _Rendered:
    """Refined pixels of part of a tile: `rect` (y, x, h, w) in render pixels. A tile at the
    edge of a view is refined only as far as the view shows it (a view's edge tiles are up to
    a quarter of its pixels, and their feature tiles and tone-anchor tiles beyond it more); a
    later view that shows more of it renders it whole."""

    rect: tuple[int, int, int, int]
    pixels: np.ndarray

    def covers(self, rect: tuple[int, int, int, int]) -> bool:
        y, x, h, w = self.rect
        ry, rx, rh, rw = rect
        return y <= ry and x <= rx and ry + rh <= y + h and rx + rw <= x + w

    def crop(self, rect: tuple[int, int, int, int]) -> np.ndarray:
        """The pixels of `rect`, which this covers."""
        ry, rx, rh, rw = rect
        return self.pixels[ry - self.rect[0]:ry - self.rect[0] + rh,
                           rx - self.rect[1]:rx - self.rect[1] + rw]


@dataclass
class _Canvas:
    """A channel's latest frame: what its next immediate frame may be resampled from."""

    view: View
    image: np.ndarray
    painted: set = field(default_factory=set)  # tiles showing refined pixels (any pass)
    total: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class ProgressiveRenderer:
    """Renders views of one engine progressively (see the module doc).

    Views are requested on numbered channels, one per pane of a comparison: a request cancels
    only its own channel's older work, and the single worker refines the channels' tiles in
    turn, so panes fill in together. Generation numbers are unique across channels.

    on_tile(TileUpdate), on_finished(generation) and on_error(generation, message) are called
    from the worker thread; keep them short (emit a Qt signal, put in a queue).
    """

    def __init__(self, engine: Engine, on_tile: Callable[[TileUpdate], None],
                 on_finished: Callable[[int], None] | None = None,
                 on_error: Callable[[int, str], None] | None = None,
                 tile_cache_bytes: int = DEFAULT_TILE_CACHE_BYTES) -> None:
        self.engine = engine
        self.on_tile = on_tile
        self.on_finished = on_finished or (lambda generation: None)
        self.on_error = on_error or (lambda generation, message: None)
        # (method, scale, tile) -> _Rendered
        self.tiles = ByteLRU(tile_cache_bytes, lambda r: r.pixels.nbytes)
        self._cond = threading.Condition()
        self._counter = 0
        self._current: dict[int, int] = {}  # channel -> its latest generation
        self._jobs: dict[int, _Job] = {}
        self._canvas: dict[int, _Canvas] = {}
        # (model, feature tile row, column, anchor references: none to encode the tile)
        self._prefetch: list[tuple[NeuralMethod, int, int, tuple[float, ...]]] = []
        self._last_request = 0.0
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="ddir-zoom-render", daemon=True)
        self._thread.start()

    # --- the caller's side (the GUI thread): never waits for the models ---------------------
    def request(self, view: View, method: str, channel: int = 0) -> Frame:
        """The immediate frame of `view` rendered with `method`; refinement starts behind it."""
        self.engine.method(method)  # unknown names fail here, not in the worker
        tiles = visible_tiles(view, self.engine.size)
        cached = {tile: self._cached(method, view, tile) for tile in tiles}
        pending = [tile for tile, pixels in cached.items() if pixels is None]
        # With every tile cached the preview would be painted over entirely: skip it.
        image = self._immediate(view, channel) if pending else self._background(view)
        for tile, pixels in cached.items():
            if pixels is not None:
                self._paste(image, view, tile, pixels)
        done = len(tiles) - len(pending)
        painted = {tile for tile, pixels in cached.items() if pixels is not None}
        work = []
        fast = self.engine.first_pass(method)
        if fast is not None:
            for tile in pending:
                pixels = self._cached(fast, view, tile)
                if pixels is None:
                    work.append((fast, tile))
                else:
                    self._paste(image, view, tile, pixels)
                    painted.add(tile)
        work += [(method, tile) for tile in pending]
        prefetch = self._prefetch_plan(view, method)
        with self._cond:
            self._last_request = time.monotonic()
            self._counter += 1
            generation = self._counter
            self._current[channel] = generation
            planned = {entry[0].name for entry in prefetch}
            self._prefetch = prefetch + [p for p in self._prefetch if p[0].name not in planned]
            self._canvas[channel] = _Canvas(view, image.copy(), painted, len(tiles))
            if pending:
                self._jobs[channel] = _Job(generation, channel, view, method, work, done,
                                           len(tiles))
            else:
                self._jobs.pop(channel, None)
            self._cond.notify()
        frame = Frame(generation, view, method, image, list(pending), len(tiles), channel)
        if not pending:
            self.on_finished(generation)
        return frame

    def cancel(self, channel: int | None = None) -> None:
        """Drop outstanding work (of one channel, or all) and any planned prefetching: nothing
        more is delivered for it until its next request."""
        with self._cond:
            for c in [channel] if channel is not None else list(self._current):
                self._counter += 1
                self._current[c] = self._counter
                self._jobs.pop(c, None)
            self._prefetch = []

    def forget(self, method: str) -> None:
        """Drop the cached tiles of `method` and of its first pass (its model changed)."""
        self.tiles.discard(lambda key: key[0] in (method, first_pass_name(method)))

    @property
    def prefetching(self) -> bool:
        """Whether prefetching is planned (the last piece taken may still be running: one
        feature tile or its anchor, tens of milliseconds)."""
        with self._cond:
            return bool(self._prefetch)

    def close(self) -> None:
        with self._cond:
            self._stopped = True
            self._jobs.clear()
            self._cond.notify()
        self._thread.join(timeout=30)

    def _prefetch_plan(self, view: View, method: str
                       ) -> list[tuple[NeuralMethod, int, int, tuple[float, ...]]]:
        """Feature tiles under `view`, nearest its centre first, as many as fit in half the
        feature cache: those of `method`'s first pass first (cheap, and what a zoom shows
        first), then the method's own; then, for a view at x1 or less, the tone anchor at
        PREFETCH_ANCHOR_REFERENCES over those of the models that keep their projections, as
        many as fit in half the anchor cache."""
        y0, x0 = view.screen_to_image(0, 0)
        y1, x1 = view.screen_to_image(view.size[1], view.size[0])
        cy, cx = view.center
        plan, budget = [], self.engine.feature_cache.max_bytes // 2
        anchors, anchor_budget = [], self.engine.anchor_cache.max_bytes // 2
        references = PREFETCH_ANCHOR_REFERENCES
        for name in (self.engine.first_pass(method), method):
            neural = self.engine.methods.get(name) or self.engine.first_passes.get(name)
            if not isinstance(neural, NeuralMethod):
                continue
            features, t = neural.features, neural.features.tile
            rows = range(max(0, int(y0) // t), min(features.grid_shape[0], int(y1) // t + 1))
            cols = range(max(0, int(x0) // t), min(features.grid_shape[1], int(x1) // t + 1))
            distance = {(ty, tx): ((ty + 0.5) * t - cy) ** 2 + ((tx + 0.5) * t - cx) ** 2
                        for ty in rows for tx in cols}
            tiles = sorted(distance, key=distance.get)
            count = min(len(tiles), budget // max(1, t * t * features.bytes_per_pixel))
            plan += [(neural, ty, tx, ()) for ty, tx in tiles[:count]]
            budget -= count * t * t * features.bytes_per_pixel
            if (references and view.scale <= 1.0 and neural.model.tone_anchor
                    and neural.keep_projections):
                each = t * t * ANCHOR_BYTES_PER_PIXEL * len(references)
                fit = min(count, anchor_budget // each)
                anchors += [(neural, ty, tx, references) for ty, tx in tiles[:fit]]
                anchor_budget -= fit * each
        return plan + anchors

    def _background(self, view: View) -> np.ndarray:
        image = np.empty((*view.size, 3), np.uint8)
        if self.engine.source.photo_rect(view) != (0, 0, *view.size):
            image[:] = BACKGROUND
        return image

    def _immediate(self, view: View, channel: int) -> np.ndarray:
        """The channel's previous frame resampled, if it covers `view` at a nearby scale and
        at least half of it was refined; else the photo's preview."""
        source = self.engine.source
        canvas = self._canvas.get(channel)
        if canvas is not None and canvas.total and len(canvas.painted) * 2 >= canvas.total:
            ratio = view.scale / canvas.view.scale
            if 1.0 / NEARBY_SCALE <= ratio <= NEARBY_SCALE:
                rect = source.photo_rect(view)
                old = canvas.view
                # Screen pixel of `view` -> pixel of the old canvas (image point * old scale).
                step = (old.scale / view.scale, old.scale / view.scale)
                start = (-old.origin[0], -old.origin[1])
                first = (start[0] + (view.origin[0] + rect[0] + 0.5) * step[0],
                         start[1] + (view.origin[1] + rect[1] + 0.5) * step[1])
                last = (start[0] + (view.origin[0] + rect[2] - 0.5) * step[0],
                        start[1] + (view.origin[1] + rect[3] - 0.5) * step[1])
                old_rect = source.photo_rect(old)
                if (rect[0] < rect[2] and rect[1] < rect[3]
                        and old_rect[0] <= first[0] - 0.5 and last[0] + 0.5 <= old_rect[2]
                        and old_rect[1] <= first[1] - 0.5 and last[1] + 0.5 <= old_rect[3]):
                    with canvas.lock:
                        return sample_view(canvas.image, view, rect, step, start)
        return source.preview(view)

    def _cached(self, method: str, view: View, tile: tuple[int, int]) -> _Rendered | None:
        """The cached pixels of `tile` if they cover what `view` shows of it."""
        rendered = self.tiles.get((method, view.scale, tile))
        if rendered is None or not rendered.covers(self._render_rect(view, tile)):
            return None
        return rendered

    def _paste(self, image: np.ndarray, view: View, tile: tuple[int, int],
               rendered: _Rendered) -> None:
        y, x, h, w = self._screen_rect(view, tile)
        image[y:y + h, x:x + w] = rendered.crop(self._render_rect(view, tile))

    def _render_rect(self, view: View, tile: tuple[int, int]) -> tuple[int, int, int, int]:
        """What `view` shows of `tile`, (y, x, h, w) in render pixels."""
        y, x, h, w = self._screen_rect(view, tile)
        return y + view.origin[0], x + view.origin[1], h, w

    def _screen_rect(self, view: View, tile: tuple[int, int]) -> tuple[int, int, int, int]:
        y, x, h, w = tile_rect(tile, self.engine.size, view.scale)
        top, left = max(y, view.origin[0]), max(x, view.origin[1])
        bottom = min(y + h, view.origin[0] + view.size[0])
        right = min(x + w, view.origin[1] + view.size[1])
        return top - view.origin[0], left - view.origin[1], bottom - top, right - left

    # --- the worker -------------------------------------------------------------------------
    def _next(self) -> tuple[_Job, tuple[str, tuple[int, int]]] | None:
        """The next (method, tile) to render: channels take turns. Called with the lock
        held."""
        if not self._jobs:
            return None
        channel = min(self._jobs, key=lambda c: self._jobs[c].done)  # the least refined first
        job = self._jobs[channel]
        tile = job.pending.pop(0)
        if not job.pending:
            del self._jobs[channel]
        return job, tile

    def _run(self) -> None:
        prepared: set[str] = set()
        while True:
            with self._cond:
                while not self._jobs and not self._prefetch and not self._stopped:
                    self._cond.wait()
                if self._stopped:
                    return
                # While requests keep coming (a zoom drag), leave the cores to the GUI thread's
                # immediate frames: start refining once the view has settled for a moment.
                settle = SETTLE_S - (time.monotonic() - self._last_request)
                if settle > 0:
                    self._cond.wait(settle)
                    continue
                if not self._jobs:
                    method, ty, tx, references = self._prefetch.pop(0)
                    job = None
                else:
                    job, work = self._next()
            if job is None:
                try:
                    with COMPUTE:
                        method.prepare()
                        t = method.features.tile
                        if references:
                            method.prefetch_anchor((ty * t, tx * t, (ty + 1) * t, (tx + 1) * t),
                                                   references)
                        else:
                            method.features.ensure(ty * t, tx * t, (ty + 1) * t, (tx + 1) * t)
                except Exception:  # prefetching is a courtesy; rendering reports errors
                    traceback.print_exc()
                continue
            try:
                if work[0] not in prepared:
                    method = self.engine.method(work[0])
                    if isinstance(method, NeuralMethod):
                        with COMPUTE:
                            method.prepare()
                    prepared.add(work[0])
                start = time.monotonic()
                if self._refine(job, *work) or time.monotonic() - start > TRIM_AFTER_S:
                    release()  # a view or a slow tile is done: hand back what it left free
            except Cancelled:
                pass
            except Exception as exc:  # the user sees a message, the worker lives on
                traceback.print_exc()
                with self._cond:
                    if self._current.get(job.channel) == job.generation:
                        self._jobs.pop(job.channel, None)
                        self.on_error(job.generation, f"{type(exc).__name__}: {exc}")

    def _refine(self, job: _Job, method: str, tile: tuple[int, int]) -> bool:
        """Render one tile and hand it over; True when it completed the job's view."""
        def cancelled() -> bool:
            return self._current.get(job.channel) != job.generation

        if cancelled():
            return False
        view, scale = job.view, job.view.scale
        final = method == job.method
        shown = self._render_rect(view, tile)
        # A tile is first refined as far as the view shows it; needed again beyond that (a
        # pan), it is refined whole, so panning step by step renders a tile at most twice.
        rect = shown if (method, scale, tile) not in self.tiles else tile_rect(
            tile, self.engine.size, scale)
        y, x, h, w = rect
        # The view's first tile is what the user waits for: it encodes no feature tile whole,
        # only what it reads (`features.FeatureTiles.grids`); the tiles after it encode whole
        # tiles, which they and later views share.
        hurry, job.started = not job.started, True
        if not hurry and method not in job.anchored:
            # After the first tile, the tone anchor under the view's tiles still to refine in
            # a few large queries (`Engine.measure_anchor`), not ring by ring around each.
            job.anchored.add(method)
            todo = [self._render_rect(view, t) for m, t in [(method, tile), *job.pending]
                    if m == method]
            top, left = min(r[0] for r in todo), min(r[1] for r in todo)
            bottom, right = max(r[0] + r[2] for r in todo), max(r[1] + r[3] for r in todo)
            self.engine.measure_anchor(method, scale, (top, left), (bottom - top, right - left),
                                       cancelled)
        rendered = _Rendered(rect, to_uint8(
            self.engine.render_region(method, scale, (y, x), (h, w), cancelled, hurry)))
        self.tiles.put((method, scale, tile), rendered)
        with self._cond:
            if cancelled():
                return False
            job.done += final
            sy, sx, sh, sw = shown[0] - view.origin[0], shown[1] - view.origin[1], *shown[2:]
            visible = rendered.crop(shown)
            canvas = self._canvas.get(job.channel)
            if canvas is not None and canvas.view == view:
                with canvas.lock:
                    canvas.image[sy:sy + sh, sx:sx + sw] = visible
                    canvas.painted.add(tile)
            self.on_tile(TileUpdate(job.generation, tile, (sy, sx, sh, sw), visible, job.done,
                                    job.total, job.channel, final))
            if final and job.done == job.total:
                self.on_finished(job.generation)
                return True
        return False
