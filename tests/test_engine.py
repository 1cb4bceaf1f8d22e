"""The engine: view geometry, exact tiles, features, progressive rendering, cancel, caches,
export, large photos and the GPU fallback."""

import math
import threading
import time

import numpy as np
import pytest
import torch

from ddir_zoom.engine import TILE, Engine, View, render_size, visible_tiles
from ddir_zoom.engine import features as features_module
from ddir_zoom.engine import methods as methods_module
from ddir_zoom.engine.engine import first_pass_name
from ddir_zoom.engine.export import export_geometry, export_region
from ddir_zoom.engine.features import FeatureTiles, appearance_embedding, tensor_bytes
from ddir_zoom.engine.lru import ByteLRU
from ddir_zoom.engine.methods import Cancelled, NeuralMethod
from ddir_zoom.engine.progressive import ProgressiveRenderer
from ddir_zoom.engine.source import BACKGROUND, PREVIEW_TOLERANCE, sample_view
from ddir_zoom.imaging import ImageSaveError, Photo, load_photo, to_uint8
from ddir_zoom.models import LatentGrid, make_model, make_preset, preset_config
from ddir_zoom.models.precision import native_bfloat16

SMALL = {"encoder": {"n_resblocks": 2, "n_feats": 8}, "hidden": [16, 16]}


def _photo(rng, h=90, w=120, alpha=False):
    y, x = np.mgrid[0:h, 0:w] / 30.0
    rgb = np.stack([np.sin(x + y), np.cos(2 * x), np.sin(3 * y)], -1) * 0.4 + 0.5
    rgb = (rgb + 0.05 * rng.random((h, w, 3))).astype(np.float32)
    a = rng.random((h, w)).astype(np.float32) if alpha else None
    return Photo(rgb=np.clip(rgb, 0, 1), alpha=a)


def _engine(rng, model="ddir", **kwargs):
    torch.manual_seed(0)
    engine = Engine(_photo(rng, **kwargs), device="cpu")
    engine.add_model(model, make_model({"model": model, **SMALL}))
    return engine


# --- geometry -------------------------------------------------------------------------------

def test_view_geometry_follows_the_design_formula():
    view = View.centred(2.5, (40.3, 61.7), (80, 128))
    cy, cx = view.center
    assert abs(cy - 40.3) <= 0.5 / 2.5 and abs(cx - 61.7) <= 0.5 / 2.5  # snapped < 1/2 px
    for u, v in ((0.5, 0.5), (63.5, 17.5), (127.5, 79.5)):
        y, x = view.screen_to_image(u, v)
        # DESIGN.md: ((v + 0.5 - H/2) / s + cy, (u + 0.5 - W/2) / s + cx) for pixel (u, v)
        assert y == pytest.approx((v - 80 / 2) / 2.5 + cy)
        assert x == pytest.approx((u - 128 / 2) / 2.5 + cx)
        assert view.image_to_screen(y, x) == pytest.approx((u, v))


def test_zoom_keeps_the_anchor_point():
    view = View.centred(1.3, (50, 70), (100, 160))
    anchor = (37.5, 81.5)
    before = view.screen_to_image(*anchor)
    after = view.zoomed(7.9, anchor).screen_to_image(*anchor)
    assert np.allclose(before, after, atol=0.5 / 7.9)
    assert view.zoomed(100).scale == 32.0 and view.zoomed(0.001).scale == 0.05


def test_visible_tiles_centre_first():
    view = View.centred(4.0, (50, 60), (300, 500))
    tiles = visible_tiles(view, (90, 120))
    cy, cx = view.origin[0] + 150, view.origin[1] + 250
    centre = min(tiles, key=lambda t: ((t[0] + .5) * TILE - cy) ** 2
                 + ((t[1] + .5) * TILE - cx) ** 2)
    assert tiles[0] == centre
    assert len(set(tiles)) == len(tiles)
    assert visible_tiles(View.centred(1.0, (-500, -500), (50, 50)), (90, 120)) == []
    assert render_size((9, 13), 2.5) == (22, 32)


def _bilinear(image, view, rect, step, start):
    """Exact bilinear samples (float64, rounded) of what `sample_view` samples."""
    y0, x0, y1, x1 = rect
    h, w = image.shape[:2]
    ys = np.clip(start[0] + (view.origin[0] + np.arange(y0, y1) + 0.5) * step[0] - 0.5, 0, h - 1)
    xs = np.clip(start[1] + (view.origin[1] + np.arange(x0, x1) + 0.5) * step[1] - 0.5, 0, w - 1)
    i0 = np.minimum(np.floor(ys).astype(int), h - 2)
    j0 = np.minimum(np.floor(xs).astype(int), w - 2)
    wy, wx = (ys - i0)[:, None, None], (xs - j0)[None, :, None]
    c = image.astype(np.float64)
    value = ((c[i0][:, j0] * (1 - wx) + c[i0][:, j0 + 1] * wx) * (1 - wy)
             + (c[i0 + 1][:, j0] * (1 - wx) + c[i0 + 1][:, j0 + 1] * wx) * wy)
    return np.floor(value + 0.5)


@pytest.mark.parametrize("scale", [0.37, 0.7, 1.0, 1.01, 2.5, 4.0])
def test_preview_samples_are_bilinear_within_their_tolerance(rng, scale):
    """The immediate frame's sampler (OpenCV's fixed-point warp) against exact bilinear, on
    noise (the worst case: the largest steps between neighbours), with the photo's border
    repeated past its edge and the background outside the photo."""
    image = rng.integers(0, 256, (150, 230, 3), dtype=np.uint8)
    view = View(scale, (int(-13 * scale), int(41 * scale)), (97, 301))
    step = (1 / scale, 1 / scale)
    rect = (3, 0, 90, 290)  # the photo's part of the screen
    frame = sample_view(image, view, rect, step, (0.25, -0.5))
    expected = _bilinear(image, view, rect, step, (0.25, -0.5))
    inside = frame[3:90, 0:290].astype(np.float64)
    assert np.abs(inside - expected).max() <= PREVIEW_TOLERANCE
    assert np.abs(inside - expected).mean() < 1.0
    outside = np.ones(frame.shape[:2], bool)
    outside[3:90, 0:290] = False
    assert (frame[outside] == BACKGROUND).all()
    # A smooth photo, as photos are, is sampled to within a level or two.
    y, x = np.mgrid[0:150, 0:230]
    smooth = (127.5 + 120 * np.sin(np.stack([x / 9, y / 7, (x + y) / 11], -1))).astype(np.uint8)
    frame = sample_view(smooth, view, rect, step, (0.25, -0.5))
    assert np.abs(frame[3:90, 0:290] - _bilinear(smooth, view, rect, step, (0.25, -0.5))
                  ).max() <= 2


# --- exact rendering ------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["bicubic", "ddir"])
@pytest.mark.parametrize("scale", [0.6, 1.0, 2.7, 6.0])
def test_any_tile_equals_the_same_pixels_of_a_full_render(rng, method, scale):
    engine = _engine(rng)
    h, w = render_size(engine.size, scale)
    full = engine.render_region(method, scale, (0, 0), (h, w))
    for _ in range(4):
        y, x = int(rng.integers(0, h - 1)), int(rng.integers(0, w - 1))
        th = int(rng.integers(1, min(TILE, h - y) + 1))
        tw = int(rng.integers(1, min(TILE, w - x) + 1))
        part = engine.render_region(method, scale, (y, x), (th, tw))
        np.testing.assert_array_equal(part, full[y:y + th, x:x + tw])


BF16 = native_bfloat16(torch.device("cpu"))


@pytest.mark.skipif(not BF16, reason="this CPU has no native bfloat16 products")
@pytest.mark.parametrize("scale", [1.7, 4.0])
def test_bfloat16_decoding_keeps_tiles_equal_to_the_full_render(rng, scale):
    """The named approximation of models.precision is still exact across tiles: a viewport
    tile, an export and a whole render of one engine show the same pixels."""
    torch.manual_seed(0)
    engine = Engine(_photo(rng), device="cpu", precision="bfloat16")
    engine.add_model("ddir", make_model({"model": "ddir", **SMALL, "hidden": [32, 32, 32]}))
    assert engine.methods["ddir"].model.precision == "bfloat16"
    h, w = render_size(engine.size, scale)
    full = engine.render_region("ddir", scale, (0, 0), (h, w))
    for _ in range(3):
        y, x = int(rng.integers(0, h - 1)), int(rng.integers(0, w - 1))
        th = int(rng.integers(1, min(TILE, h - y) + 1))
        tw = int(rng.integers(1, min(TILE, w - x) + 1))
        np.testing.assert_array_equal(engine.render_region("ddir", scale, (y, x), (th, tw)),
                                      full[y:y + th, x:x + tw])


def test_precision_of_methods_and_first_passes(rng, monkeypatch):
    """float32 unless asked; a first pass decodes in bfloat16 where that is native; asking for
    bfloat16 where it is not falls back to float32 and says so."""
    torch.manual_seed(0)
    model = make_model({"model": "ddir", **SMALL})
    engine = Engine(_photo(rng), device="cpu")
    engine.add_model("ddir", model, first_pass=make_model({"model": "ddir", **SMALL}))
    assert engine.precision == "float32" and model.precision == "float32"
    fast = engine.first_passes[first_pass_name("ddir")].model
    assert fast.precision == ("bfloat16" if BF16 else "float32")
    from ddir_zoom.models import precision as precision_module

    monkeypatch.setattr(precision_module, "native_bfloat16", lambda device: False)
    said = []
    engine = Engine(_photo(rng), device="cpu", precision="bfloat16", notify=said.append)
    assert engine.precision == "float32" and "float32" in said[0]
    with pytest.raises(ValueError, match="unknown precision"):
        Engine(_photo(rng), device="cpu", precision="float16")


@pytest.mark.parametrize("shared", [False, True])
def test_tiled_features_equal_whole_image_features(rng, shared):
    """Feature tiles give the whole image's projections, for a DDIR with an encoder per branch
    and one with a shared encoder, whose tiles then hold one feature map."""
    torch.manual_seed(0)
    model = make_model({**preset_config("ddir", "compact"), "shared_encoder": shared}).eval()
    rgb = _photo(rng, 150, 170).rgb
    cache = ByteLRU(1 << 30, tensor_bytes)
    tiles = FeatureTiles(model, rgb, torch.device("cpu"), cache, key="m", tile=32)
    with torch.no_grad():
        whole = model.project(model.encode(torch.from_numpy(rgb).permute(2, 0, 1)[None]))
    grids = tiles.grids(0, 0, 150, 170)
    assert set(grids) == {"deformation", "sr"}
    for branch, grid in grids.items():
        assert grid.origin == (0, 0)
        assert (grid.values - whole[branch]).abs().max() < 1e-4
    assert list(cache.get(("m", 0, 0))) == (["sr"] if shared else ["deformation", "sr"])
    part = tiles.grids(41, 77, 90, 140)
    assert part["sr"].origin == (41, 77)
    assert (part["sr"].values - whole["sr"][:, 41:90, 77:140]).abs().max() < 1e-4


def test_feature_tiles_encoded_side_by_side_equal_tiles_encoded_one_by_one(rng, monkeypatch):
    """ensure() encodes the missing tiles of a region on the cores side by side
    (ddir_zoom.parallel): each tile gets the values it gets alone, and a cancel stops it."""
    torch.manual_seed(0)
    model = make_preset("ddir", "compact").eval()
    rgb = _photo(rng, 150, 170).rgb
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        together = FeatureTiles(model, rgb, torch.device("cpu"),
                                ByteLRU(1 << 30, tensor_bytes), key="m", tile=32)
        assert together.ensure(0, 0, 150, 170) and together.tiles_encoded == 30
        cancelled = FeatureTiles(model, rgb, torch.device("cpu"),
                                 ByteLRU(1 << 30, tensor_bytes), key="m", tile=32)
        assert not cancelled.ensure(0, 0, 150, 170, cancelled=lambda: True)
        assert cancelled.tiles_encoded == 0
        monkeypatch.setenv("DDIR_ZOOM_PIECES", "0")
        alone = FeatureTiles(model, rgb, torch.device("cpu"),
                             ByteLRU(1 << 30, tensor_bytes), key="m", tile=32)
        assert alone.ensure(0, 0, 150, 170)
    finally:
        torch.set_num_threads(before)
    for ty in range(5):
        for tx in range(6):
            a, b = together.cache.get(("m", ty, tx)), alone.cache.get(("m", ty, tx))
            for branch in a:
                torch.testing.assert_close(a[branch], b[branch], rtol=0, atol=1e-5)


def test_projection_blocks_equal_whole_image_projections(rng):
    """Features cached per tile of 128 with a ring, projected per block of 64: every block
    edge, tile edge and photo border of a 150 x 200 photo."""
    torch.manual_seed(0)
    model = make_preset("ddir", "compact").eval()
    rgb = _photo(rng, 150, 200).rgb
    cache = ByteLRU(1 << 30, tensor_bytes)
    tiles = FeatureTiles(model, rgb, torch.device("cpu"), cache, key="m", tile=128)
    assert tiles.block == 64 and tiles.grid_shape == (2, 2)
    with torch.no_grad():
        whole = model.project(model.encode(torch.from_numpy(rgb).permute(2, 0, 1)[None]))
    for branch, grid in tiles.grids(0, 0, 150, 200).items():
        assert (grid.values - whole[branch]).abs().max() < 1e-4
    assert tiles.tiles_encoded == 4 and tiles.blocks_projected == 3 * 4
    one = tiles.grids(64, 128, 128, 192)  # exactly one block: no copy
    assert one["sr"].origin == (64, 128) and one["sr"].values.shape[1:3] == (64, 64)
    with pytest.raises(ValueError, match="divide"):
        FeatureTiles(model, rgb, torch.device("cpu"), cache, key="m", tile=128, block=48)


def _fresh_tiles_and_whole(rng):
    """(a maker of empty FeatureTiles of 64 pixels over a 150 x 200 photo for a compact DDIR,
    that photo's whole-image projections)."""
    torch.manual_seed(0)
    model = make_preset("ddir", "compact").eval()
    rgb = _photo(rng, 150, 200).rgb
    with torch.no_grad():
        whole = model.project(model.encode(torch.from_numpy(rgb).permute(2, 0, 1)[None]))

    def fresh():
        return FeatureTiles(model, rgb, torch.device("cpu"), ByteLRU(1 << 30, tensor_bytes),
                            key="m", tile=64, projections=ByteLRU(1 << 30, tensor_bytes))

    return fresh, whole


def test_parts_in_a_hurry_equal_whole_tile_projections_and_are_not_cached(rng):
    """With `parts`, a region over feature tiles not yet encoded takes its projections from
    features encoded for what it reads alone, one part: the same values as the whole tiles'
    (and the whole image's), no tile encoded, nothing cached. A later request of the same
    hurry inside that part reuses it until `end_render`; encoded tiles and cached blocks are
    used as they are, and without `parts` tiles are encoded whole."""
    fresh, whole = _fresh_tiles_and_whole(rng)

    # Rows 10-66 and columns 60-131 of a 64-pixel tile grid: six feature tiles.
    region = (10, 60, 67, 132)
    hurried = fresh()
    assert hurried.ensure(*region, parts=True) and hurried.tiles_encoded == 0
    grids = hurried.grids(*region, parts=True)
    assert hurried.tiles_encoded == hurried.blocks_projected == 0
    assert hurried.parts_projected == 1
    assert len(hurried.cache) == len(hurried.projections) == 0
    plain = fresh()
    reference = plain.grids(*region)
    assert plain.tiles_encoded == 6 and plain.parts_projected == 0
    for branch, grid in grids.items():
        assert grid.origin == (10, 60)
        expected = whole[branch][:, 10:67, 60:132]
        assert (grid.values - expected).abs().max() < 1e-4
        assert (grid.values - reference[branch].values).abs().max() < 1e-5
    # Inside the held part: cut from it, not computed again; outside it: a new part.
    inner = hurried.grids(20, 70, 60, 120, parts=True)
    assert hurried.parts_projected == 1
    for branch, grid in inner.items():  # the grid may extend past the region
        (oy, ox), values = grid.origin, grid.values
        assert oy <= 20 and ox <= 70 and values.shape[1] >= 60 - oy and values.shape[2] >= 120 - ox
        got = values[:, 20 - oy:60 - oy, 70 - ox:120 - ox]
        assert (got - whole[branch][:, 20:60, 70:120]).abs().max() < 1e-4
    hurried.grids(0, 0, 30, 30, parts=True)
    assert hurried.parts_projected == 2
    hurried.end_render()
    hurried.grids(0, 0, 30, 30, parts=True)
    assert hurried.parts_projected == 3 and hurried.tiles_encoded == 0
    # Encoded tiles and cached blocks are used as they are, in a hurry too.
    hurried.ensure(0, 0, 150, 200)
    again = hurried.grids(*region, parts=True)
    assert hurried.parts_projected == 3
    assert hurried.blocks_projected == len(hurried.projections) == 6
    for branch, grid in again.items():
        assert (grid.values - reference[branch].values).abs().max() < 1e-5


def test_a_sliver_of_a_tile_not_encoded_comes_from_a_part(rng):
    """A region that reads at most SLIVER rows or columns of a feature tile not encoded (the
    tone anchor's ring crossing a tile's edge) takes them from a part: that tile is not
    encoded and the values equal the whole image's. A wider read encodes the tile whole."""
    fresh, whole = _fresh_tiles_and_whole(rng)

    assert features_module.SLIVER == 2
    for region, tiles in (((10, 63, 60, 120), [(0, 1)]),     # one column of tile (0, 0)
                          ((10, 70, 66, 110), [(0, 1)]),     # two rows of tile (1, 1)
                          ((62, 63, 100, 100), [(1, 1)])):  # slivers of three tiles
        sliced = fresh()
        grids = sliced.grids(*region)
        encoded = sliced.cache.keys()
        assert sorted(key[1:] for key in encoded) == tiles, region
        assert sliced.tiles_encoded == len(tiles)
        y0, x0, y1, x1 = region
        for branch, grid in grids.items():
            assert grid.origin == (y0, x0)
            assert (grid.values - whole[branch][:, y0:y1, x0:x1]).abs().max() < 1e-4
    # A sliver is a part along the whole tile, kept: the next request along that edge reuses it.
    along = fresh()
    along.grids(10, 63, 30, 120)
    assert along.parts_projected == 1
    for branch, grid in along.grids(30, 63, 64, 120).items():
        assert (grid.values - whole[branch][:, 30:64, 63:120]).abs().max() < 1e-4
    assert along.parts_projected == 1
    wider = fresh()
    wider.grids(10, 61, 60, 120)  # three columns of tile (0, 0)
    encoded = wider.cache.keys()
    assert sorted(key[1:] for key in encoded) == [(0, 0), (0, 1)]


def test_first_tile_of_a_view_goes_in_a_hurry_and_equals_the_full_render(rng):
    """The renderer asks for each view's first tile in a hurry (a part, no tile encoded
    whole) and for the others not; the refined view equals the full render either way."""
    engine = _engine(rng, h=200, w=260)
    hurries = []
    real = engine.render_region

    def spy(method, scale, offset, shape, cancelled=None, hurry=False):
        hurries.append(hurry)
        return real(method, scale, offset, shape, cancelled, hurry)

    engine.render_region = spy
    renderer, got = _renderer(engine)
    try:
        view = View.centred(3.0, (100, 130), (2 * TILE, 2 * TILE))
        frame = renderer.request(view, "ddir")
        assert got.done.wait(60) and not got.errors
        assert hurries[0] and not any(hurries[1:]) and len(hurries) == frame.total
        canvas = frame.image.copy()
        for update in got.tiles:
            y, x, h, w = update.rect
            canvas[y:y + h, x:x + w] = update.pixels
        full = to_uint8(real("ddir", view.scale, view.origin, view.size))
        np.testing.assert_array_equal(canvas, full)
    finally:
        renderer.close()


@pytest.mark.parametrize("scale", [1.5, 4.0])
def test_a_hurried_render_with_the_tone_anchor_computes_one_part_and_equals_the_plain(rng,
                                                                                      scale):
    """In a hurry the tone anchor (at two reference scales) and the render's own region read
    one part, computed once and dropped at the end; the pixels equal a render not in a hurry."""
    torch.manual_seed(0)
    model = make_model({"model": "ddir", **SMALL})
    model.tone_anchor = True
    engine = Engine(_photo(rng, 300, 400), device="cpu")
    engine.add_model("ddir", model)
    features = engine.methods["ddir"].features
    offset, shape = (int(140 * scale), int(180 * scale)), (TILE, TILE)
    hurried = engine.render_region("ddir", scale, offset, shape, hurry=True)
    assert features.parts_projected == 1 and features.tiles_encoded == 0
    assert features._part is None and len(features.cache) == 0
    engine.clear_caches()
    plain = engine.render_region("ddir", scale, offset, shape)
    # Tiles encoded whole (and parts only for the anchor's slivers, see SLIVER), none held.
    assert features.tiles_encoded > 0 and features._part is None
    np.testing.assert_allclose(hurried, plain, atol=1e-6)


def test_appearance_embedding_exact_then_fixed_estimate(rng, monkeypatch):
    torch.manual_seed(0)
    model = make_model({"model": "ddir", **SMALL}).eval()
    rgb = _photo(rng, 200, 260).rgb
    with torch.no_grad():
        exact = model.encode(torch.from_numpy(rgb).permute(2, 0, 1)[None])["sr"].mean((2, 3))
    cpu = torch.device("cpu")
    assert torch.allclose(appearance_embedding(model, rgb, cpu), exact, atol=1e-5)
    monkeypatch.setattr(features_module, "EXACT_EMBEDDING_MAX_PIXELS", 10_000)
    monkeypatch.setattr(features_module, "ESTIMATE_WINDOW", 32)
    estimate = appearance_embedding(model, rgb, cpu)
    assert torch.equal(estimate, appearance_embedding(model, rgb, cpu))  # deterministic
    assert (estimate - exact).abs().max() < 0.2 * exact.abs().max()
    assert appearance_embedding(make_model({"model": "liif", **SMALL}), rgb, cpu) is None


# --- progressive rendering ------------------------------------------------------------------

class _Collector:
    def __init__(self):
        self.tiles, self.finished, self.errors = [], [], []
        self.done = threading.Event()

    def tile(self, update):
        self.tiles.append(update)

    def finish(self, generation):
        self.finished.append(generation)
        self.done.set()

    def error(self, generation, message):
        self.errors.append(message)
        self.done.set()


def _renderer(engine, **kwargs):
    c = _Collector()
    return ProgressiveRenderer(engine, c.tile, c.finish, c.error, **kwargs), c


def test_progressive_frame_then_tiles_equal_the_full_render(rng):
    engine = _engine(rng)
    renderer, got = _renderer(engine)
    try:
        view = View.centred(3.3, (45, 60), (200, 260))
        frame = renderer.request(view, "ddir")
        assert frame.image.shape == (200, 260, 3) and frame.pending
        assert got.done.wait(60) and not got.errors
        canvas = frame.image.copy()
        for update in got.tiles:
            assert update.generation == frame.generation
            y, x, h, w = update.rect
            canvas[y:y + h, x:x + w] = update.pixels
        assert got.tiles[-1].done == frame.total
        y0, x0, y1, x1 = engine.source.photo_rect(view)
        full = to_uint8(engine.render_region("ddir", 3.3, (view.origin[0] + y0,
                                                            view.origin[1] + x0),
                                             (y1 - y0, x1 - x0)))
        np.testing.assert_array_equal(canvas[y0:y1, x0:x1], full)
        # Coming back is instant: everything comes from the tile cache.
        again = renderer.request(view, "ddir")
        assert again.pending == [] and np.array_equal(again.image, canvas)
    finally:
        renderer.close()


def test_a_view_measures_its_tone_anchor_in_bands_after_its_first_tile(rng, monkeypatch):
    """After a view's first (hurried) tile, the renderer measures the tone anchor of the whole
    view in bands of ANCHOR_BAND LR rows (`Engine.measure_anchor`), so the view's other tiles
    measure nothing; the refined view still equals the full render."""
    engine = _engine(rng, h=300, w=400)
    engine.methods["ddir"].model.tone_anchor = True
    monkeypatch.setattr(methods_module, "ANCHOR_BAND", 64)
    calls = []
    real = NeuralMethod._measure_tiles

    def spy(self, tiles, reference, appearance, hurry=False):
        calls.append(hurry)
        return real(self, tiles, reference, appearance, hurry)

    monkeypatch.setattr(NeuralMethod, "_measure_tiles", spy)
    renderer, got = _renderer(engine)
    try:
        view = View.centred(2.5, (150, 200), (3 * TILE, 3 * TILE))
        frame = renderer.request(view, "ddir")
        assert got.done.wait(120) and not got.errors
        canvas = frame.image.copy()
        for update in got.tiles:
            y, x, h, w = update.rect
            canvas[y:y + h, x:x + w] = update.pixels
        # The hurried first tile at the two reference scales of x2.5, then the view's anchor
        # rows (LR rows 73-228 and the low-pass radius of 6 around them: 6 tile rows of 32) in
        # bands of two tile rows at each reference; the view's other 15 tiles measure nothing.
        assert calls == [True, True] + [False] * 6
        full = to_uint8(engine.render_region("ddir", 2.5, view.origin, view.size))
        np.testing.assert_array_equal(canvas, full)
    finally:
        renderer.close()
    # A model that does not keep its projections (the paper-size ones) is left to its tiles.
    calls.clear()
    engine.methods["ddir"].features.keep_projections = False
    engine.clear_caches()
    engine.measure_anchor("ddir", 2.5, view.origin, view.size)
    assert calls == []


def test_edge_tiles_are_refined_as_far_as_shown_then_grown(rng):
    """A tile at the edge of a view is rendered only where the view shows it; a pan that shows
    more of it renders it whole, and every frame equals the full render."""
    engine = _engine(rng)
    rendered = []
    real = engine.render_region

    def spy(method, scale, offset, shape, cancelled=None, hurry=False):
        rendered.append(shape[0] * shape[1])
        return real(method, scale, offset, shape, cancelled, hurry)

    engine.render_region = spy
    renderer, got = _renderer(engine)

    def check(view):
        got.done.clear()
        got.tiles.clear()
        frame = renderer.request(view, "ddir")
        assert not frame.pending or (got.done.wait(60) and not got.errors)
        canvas = frame.image.copy()
        for update in got.tiles:
            y, x, h, w = update.rect
            canvas[y:y + h, x:x + w] = update.pixels
        y0, x0, y1, x1 = engine.source.photo_rect(view)
        full = to_uint8(real("ddir", view.scale, (view.origin[0] + y0, view.origin[1] + x0),
                             (y1 - y0, x1 - x0)))
        np.testing.assert_array_equal(canvas[y0:y1, x0:x1], full)
        return frame

    try:
        view = View(3.0, (TILE // 2, TILE // 2), (TILE, TILE))  # 4 quarter tiles
        frame = check(view)
        assert frame.total == 4 and sum(rendered) == TILE * TILE
        rendered.clear()
        frame = check(View(3.0, (TILE // 4, TILE // 2), (TILE, TILE)))  # up a quarter tile
        assert frame.total == 4 and len(frame.pending) == 2
        assert sum(rendered) == 2 * TILE * TILE  # the two top tiles, whole
        rendered.clear()
        assert check(view).pending == []  # back again: cached
        assert rendered == []
    finally:
        renderer.close()


def test_a_refined_view_hands_free_memory_back(rng, monkeypatch):
    """`memory.release` runs once a view is refined, not per tile (glibc keeps freed heap)."""
    from ddir_zoom.engine import progressive

    calls = []
    monkeypatch.setattr(progressive, "release", lambda: calls.append(1))
    engine = _engine(rng)
    renderer, got = _renderer(engine)
    try:
        frame = renderer.request(View.centred(3.3, (45, 60), (200, 260)), "ddir")
        assert frame.total > 1 and got.done.wait(60) and not got.errors
        deadline = time.time() + 10
        while not calls and time.time() < deadline:
            time.sleep(0.01)
        assert calls == [1]
    finally:
        renderer.close()


def test_a_first_pass_shows_first_then_the_method_replaces_it(rng):
    """A fast model's tiles come first (final False) and do not count as progress; then the
    method's own tiles replace every one, and the view ends equal to the method's render."""
    torch.manual_seed(0)
    engine = Engine(_photo(rng), device="cpu")
    slow = make_model({"model": "ddir", **SMALL})
    fast = make_model({"model": "ddir", "encoder": {"n_resblocks": 1, "n_feats": 8},
                       "hidden": [8]})
    engine.add_model("ddir", slow, first_pass=fast)
    assert list(engine.methods) == ["bicubic", "ddir"]  # the first pass is not offered
    fast_name = engine.first_pass("ddir")
    renderer, got = _renderer(engine)
    try:
        view = View.centred(2.5, (45, 60), (200, 260))
        frame = renderer.request(view, "ddir")
        assert got.done.wait(60) and not got.errors
        firsts = [u for u in got.tiles if not u.final]
        finals = [u for u in got.tiles if u.final]
        assert len(firsts) == len(finals) == frame.total == len(frame.pending)
        # Every first-pass tile comes first.
        assert [u.final for u in got.tiles] == [False] * len(firsts) + [True] * len(finals)
        assert [u.done for u in firsts] == [0] * len(firsts)
        assert [u.done for u in finals] == list(range(1, frame.total + 1))
        canvas = frame.image.copy()
        for update in got.tiles:
            y, x, h, w = update.rect
            canvas[y:y + h, x:x + w] = update.pixels
        y0, x0, y1, x1 = engine.source.photo_rect(view)
        at = (view.origin[0] + y0, view.origin[1] + x0)
        full = to_uint8(engine.render_region("ddir", 2.5, at, (y1 - y0, x1 - x0)))
        np.testing.assert_array_equal(canvas[y0:y1, x0:x1], full)
        first = to_uint8(engine.render_region(fast_name, 2.5, at, (y1 - y0, x1 - x0)))
        assert not np.array_equal(first, full)
        first_canvas = frame.image.copy()
        for update in firsts:
            y, x, h, w = update.rect
            first_canvas[y:y + h, x:x + w] = update.pixels
        np.testing.assert_array_equal(first_canvas[y0:y1, x0:x1], first)
        # Back at a view whose own tiles were dropped, the cached first pass shows at once.
        renderer.tiles.discard(lambda key: key[0] == "ddir")
        got.done.clear()
        again = renderer.request(view, "ddir")
        np.testing.assert_array_equal(again.image[y0:y1, x0:x1], first)
        assert got.done.wait(60)
    finally:
        renderer.close()


def test_a_newer_request_cancels_the_older_and_no_stale_tile_arrives(rng):
    engine = _engine(rng, h=300, w=400)
    slow = engine.methods["ddir"]
    original = slow.render

    def slow_render(*args, **kwargs):
        time.sleep(0.05)
        return original(*args, **kwargs)

    slow.render = slow_render
    renderer, got = _renderer(engine)
    try:
        first = renderer.request(View.centred(6.0, (150, 200), (600, 800)), "ddir")
        time.sleep(0.15)
        second = renderer.request(View.centred(2.0, (150, 200), (128, 128)), "bicubic")
        assert got.done.wait(30)
        time.sleep(0.2)
        stale = [t for t in got.tiles if t.generation == first.generation]
        # the first view had many tiles; only those finished before the second request came
        assert len(stale) < len(first.pending)
        late = [t for t in got.tiles[len(stale):] if t.generation != second.generation]
        assert late == []
        assert got.finished == [second.generation]
    finally:
        renderer.close()


def test_cancel_stops_delivery(rng):
    engine = _engine(rng, h=300, w=400)
    renderer, got = _renderer(engine)
    try:
        frame = renderer.request(View.centred(8.0, (150, 200), (800, 1000)), "ddir")
        renderer.cancel()
        count = len(got.tiles)
        time.sleep(1.0)
        assert len(got.tiles) <= count + 1 and len(got.tiles) < len(frame.pending)
        assert got.finished == []
    finally:
        renderer.close()


def test_tile_cache_is_bounded(rng):
    engine = _engine(rng)
    renderer, got = _renderer(engine, tile_cache_bytes=3 * TILE * TILE * 3)
    try:
        frame = renderer.request(View.centred(5.0, (45, 60), (400, 600)), "bicubic")
        assert got.done.wait(30)
        assert renderer.tiles.bytes <= 3 * TILE * TILE * 3
        assert len(got.tiles) == frame.total > len(renderer.tiles)  # older tiles were evicted
    finally:
        renderer.close()


@pytest.mark.parametrize("keep", [True, False])
def test_feature_cache_is_bounded_and_stays_exact(rng, monkeypatch, keep):
    """With caches far too small for the render, evicted tiles and blocks are computed again,
    identically; with `keep` False the projections never enter the tiny cache (a model
    whose projections of a view outgrow it keeps them for one render only)."""
    torch.manual_seed(0)
    photo = _photo(rng, 160, 200)
    big = Engine(photo, device="cpu")
    big.add_model("ddir", make_model({"model": "ddir", **SMALL}))
    budget = 200_000
    if keep:
        monkeypatch.setattr(methods_module, "VIEW_LR_PIXELS", 1)
    small = Engine(photo, device="cpu", feature_cache_bytes=budget,
                   projection_cache_bytes=budget)
    small.add_model("ddir", big.methods["ddir"].model)
    assert big.methods["ddir"].keep_projections
    assert small.methods["ddir"].keep_projections == keep
    for engine in (big, small):
        engine.methods["ddir"].features.tile = 32
    a = big.render_region("ddir", 3.0, (0, 0), (480, 600))
    b = small.render_region("ddir", 3.0, (0, 0), (480, 600))
    assert small.feature_cache.bytes <= budget and small.projection_cache.bytes <= budget
    assert (len(small.projection_cache) > 0) == keep
    features = small.methods["ddir"].features
    # Evicted tiles were encoded again, identically.
    assert features.tiles_encoded > 5 * 7
    np.testing.assert_array_equal(a, b)


def test_projections_kept_for_one_render_are_shared_by_its_anchor_and_dropped(rng):
    """A model that keeps its projections for one render only (the paper-size DDIR) computes
    each block a render reads once, for the tone anchor and the render's own region
    together, puts none in the shared cache and holds none after the render; its pixels
    equal those of the same model keeping its blocks."""
    torch.manual_seed(0)
    model = make_model({"model": "ddir", **SMALL})
    model.tone_anchor = True
    photo = _photo(rng, 200, 260)
    kept = Engine(photo, device="cpu")
    kept.add_model("ddir", model)
    once = Engine(photo, device="cpu", projection_cache_bytes=1 << 20)
    once.add_model("ddir", model)
    features = once.methods["ddir"].features
    assert kept.methods["ddir"].keep_projections and not features.keep_projections
    assert features.block == features_module.RENDER_BLOCK
    kept.methods["ddir"].features._block = features_module.RENDER_BLOCK  # the same blocks
    offset, shape = (300, 420), (TILE, TILE)
    a = kept.render_region("ddir", 2.5, offset, shape)
    b = once.render_region("ddir", 2.5, offset, shape)
    np.testing.assert_array_equal(a, b)
    assert len(once.projection_cache) == 0 and len(features.projections) == 0
    assert features.blocks_projected == kept.methods["ddir"].features.blocks_projected
    # A second render computes the blocks under its region again (they were dropped; the
    # anchor's measurements are cached).
    once.render_region("ddir", 2.5, offset, shape)
    y0, x0, y1, x1 = once.methods["ddir"].lr_region((2.5, 2.5), offset, shape)
    side = features.block
    under = ((y1 - 1) // side - y0 // side + 1) * ((x1 - 1) // side - x0 // side + 1)
    assert features.blocks_projected == kept.methods["ddir"].features.blocks_projected + under


def test_a_model_whose_projections_outgrow_the_cache_keeps_them_for_one_render(rng):
    """The paper-size DDIR's projections of a view (2 KB per LR pixel) would not fit in the
    projection cache; its distilled student's (256 bytes) do."""
    engine = Engine(_photo(rng), device="cpu")
    paper = engine.add_model("paper", make_preset("ddir", "paper"))
    student = engine.add_model("student", make_preset("ddir", "student"))
    assert not paper.keep_projections and not paper.features.keep_projections
    assert student.keep_projections and student.features.keep_projections


def test_large_photo_renders_a_view_without_encoding_it_all(rng):
    """A 24-megapixel photo: a view at x2 encodes only the tiles under it."""
    h, w = 4000, 6000
    rgb = np.empty((h, w, 3), np.float32)
    rgb[:] = np.linspace(0, 1, w, dtype=np.float32)[None, :, None]
    engine = Engine(Photo(rgb=rgb), device="cpu")
    torch.manual_seed(0)
    method = engine.add_model("ddir", make_preset("ddir", "compact"))
    view = View.centred(2.0, (2000, 3000), (400, 640))
    renderer, got = _renderer(engine)
    try:
        frame = renderer.request(view, "ddir")
        assert got.done.wait(120) and not got.errors
        tiles = method.features
        # the view shows LR rows 1900-2099 and columns 2840-3159 (its edge tiles are refined
        # only as far as shown), plus the ensemble neighbours just outside: 3 x 3 feature
        # tiles of 128 out of 32 x 47
        assert tiles.tiles_encoded == 9 < tiles.grid_shape[0] * tiles.grid_shape[1]
        assert frame.image.shape == (400, 640, 3)
    finally:
        renderer.close()


def test_gpu_out_of_memory_retries_then_falls_back_to_cpu(rng, monkeypatch):
    engine = _engine(rng)
    method = engine.methods["ddir"]
    method.prepare()
    messages = []
    method.notify = messages.append
    method.device = torch.device("cuda")  # pretend; the real decode runs on the CPU
    real = method._decode
    chunks = []

    def flaky(*args, **kwargs):
        chunks.append(method.chunk)
        if method.device.type == "cuda":
            raise torch.OutOfMemoryError("CUDA out of memory")
        return real(*args, **kwargs)

    monkeypatch.setattr(method, "_decode", flaky)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    out = engine.render_region("ddir", 2.0, (0, 0), (20, 20))
    assert out.shape == (20, 20, 3)
    cuda_tries = chunks[:-1]
    assert cuda_tries == sorted(cuda_tries, reverse=True) and cuda_tries[-1] <= 256  # halved
    assert method.device.type == "cpu" and "CPU" in messages[0]
    np.testing.assert_array_equal(out, engine.render_region("ddir", 2.0, (0, 0), (20, 20)))


def test_a_model_moved_to_the_cpu_chooses_again_whether_to_keep_its_projections(rng,
                                                                               monkeypatch):
    """On a GPU a photo in one projection block keeps its projections whatever their size; a
    model that runs out of GPU memory goes back to the CPU's blocks, and one whose view's
    projections outgrow the cache keeps them for one render only there."""
    torch.manual_seed(0)
    engine = Engine(_photo(rng), device="cpu", projection_cache_bytes=1 << 20)
    method = engine.add_model("ddir", make_model({"model": "ddir", **SMALL}))
    method.prepare()
    side = max(engine.size)
    method.features = method._feature_tiles(torch.device("cpu"), tile=side, block=side)
    assert method.keep_projections
    method.device = torch.device("cuda")  # pretend; the real decode runs on the CPU
    real = method._decode

    def out_of_memory(*args, **kwargs):
        if method.device.type == "cuda":
            raise torch.OutOfMemoryError("CUDA out of memory")
        return real(*args, **kwargs)

    monkeypatch.setattr(method, "_decode", out_of_memory)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    engine.render_region("ddir", 2.0, (0, 0), (20, 20))
    assert method.device.type == "cpu" and not method.keep_projections
    assert method.features.block == features_module.RENDER_BLOCK


# --- export ---------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".png", ".tif", ".jpg", ".webp"])
def test_export_equals_the_viewport(rng, tmp_path, suffix):
    engine = _engine(rng)
    scale = 2.7
    view = View.centred(scale, (40, 55), (150, 210))
    renderer, got = _renderer(engine)
    try:
        frame = renderer.request(view, "ddir")
        assert got.done.wait(60)
    finally:
        renderer.close()
    canvas = frame.image.copy()
    for u in got.tiles:
        y, x, h, w = u.rect
        canvas[y:y + h, x:x + w] = u.pixels
    rect = (view.origin[0] / scale, view.origin[1] / scale, 150 / scale, 210 / scale)
    path = export_region(engine, tmp_path / f"crop{suffix}", "ddir", rect=rect, scale=scale,
                         quality=100)
    exported = load_photo(path).rgb
    assert exported.shape == (150, 210, 3)
    difference = np.abs(to_uint8(exported).astype(int) - canvas.astype(int))
    if suffix in (".png", ".tif"):
        assert difference.max() == 0
    else:
        assert difference.mean() < 3
    assert not list(tmp_path.glob("*.part"))


def test_export_exact_size_alpha_and_metadata(rng, tmp_path):
    engine = _engine(rng, alpha=True)
    engine.photo.exif = b"Exif\x00\x00II*\x00\x08\x00\x00\x00\x00\x00\x00\x00\x00\x00"
    progress = []
    path = export_region(engine, tmp_path / "big.png", "bicubic", size=(301, 257),
                         progress=lambda d, t: progress.append((d, t)))
    photo = load_photo(path)
    assert photo.rgb.shape == (301, 257, 3) and photo.alpha is not None
    assert progress[-1][0] == progress[-1][1] == len(progress)
    direct = engine.render_region("bicubic", (301 / 90, 257 / 120), (0, 0), (301, 257))
    np.testing.assert_array_equal(to_uint8(photo.rgb), to_uint8(direct))


def test_export_cancel_leaves_nothing(rng, tmp_path):
    engine = _engine(rng)
    (tmp_path / "keep.png").write_bytes(b"old")
    calls = []
    for name in ("keep.png", "new.jpg"):
        with pytest.raises(Cancelled):
            export_region(engine, tmp_path / name, "ddir", scale=6.0,
                          progress=lambda d, t: calls.append(d),
                          cancelled=lambda: len(calls) >= 3)
        calls.clear()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.png"]
    assert (tmp_path / "keep.png").read_bytes() == b"old"


def test_export_refusals(rng, tmp_path):
    engine = _engine(rng)
    with pytest.raises(ImageSaveError, match="does not exist"):
        export_region(engine, tmp_path / "no" / "a.png", "bicubic", scale=2)
    with pytest.raises(ImageSaveError, match="at most 16383"):
        export_region(engine, tmp_path / "a.webp", "bicubic", scale=200)
    with pytest.raises(ValueError, match="outside the photo"):
        export_region(engine, tmp_path / "a.png", "bicubic", rect=(500, 500, 10, 10), scale=2)
    with pytest.raises(KeyError):
        export_region(engine, tmp_path / "a.png", "esrgan", scale=2)


def test_export_geometry():
    assert export_geometry((0, 0, 90, 120), scale=2.5) == ((2.5, 2.5), (0, 0), (225, 300))
    # a rectangle at fractional position: the render pixels whose centres fall inside
    (_, offset, shape) = export_geometry((10.3, 20.1, 5.0, 7.0), scale=2.0)
    assert offset == (21, 40) and shape == (10, 14)
    scale, offset, shape = export_geometry((10, 20, 30, 40), size=(60, 100))
    assert scale == (2.0, 2.5) and offset == (20.0, 50.0) and shape == (60, 100)


def test_lru_accounting():
    lru = ByteLRU(10, len)
    lru.put("a", b"1234")
    lru.put("b", b"123456")
    assert lru.bytes == 10 and len(lru) == 2
    lru.get("a")
    lru.put("c", b"12")  # evicts b, the least recently used
    assert lru.keys() == ["a", "c"] and lru.bytes == 6
    lru.put("huge", b"x" * 11)
    assert "huge" not in lru
    lru.discard(lambda k: k == "a")
    assert lru.keys() == ["c"] and lru.bytes == 2


def test_grid_regions_reject_queries_outside(rng):
    torch.manual_seed(0)
    model = make_model({"model": "liif", **SMALL}).eval()
    with torch.no_grad():
        proj = model.project(model.encode(torch.rand(1, 3, 20, 20)))["sr"]
    grid = {"sr": LatentGrid(proj[:, 5:10, 5:10].contiguous(), (5, 5))}
    coords = torch.tensor([[[1.0, 1.0]]], dtype=torch.float64)
    with pytest.raises(IndexError):
        model.decode(grid, coords, torch.full((1, 1, 2), 0.5), (20, 20))


def test_channels_render_side_by_side_and_cancel_separately(rng):
    engine = _engine(rng)
    renderer, got = _renderer(engine)
    try:
        view = View.centred(3.0, (45, 60), (256, 384))
        a = renderer.request(view, "ddir", channel=0)
        b = renderer.request(view, "bicubic", channel=1)
        c = renderer.request(view.zoomed(3.5), "bicubic", channel=1)  # replaces only b
        deadline = time.time() + 60
        while time.time() < deadline and not {a.generation, c.generation} <= set(got.finished):
            time.sleep(0.05)
        assert {a.generation, c.generation} <= set(got.finished)
        assert b.generation not in got.finished
        by_channel = {0: [], 1: []}
        for update in got.tiles:
            by_channel[update.channel].append(update.generation)
        assert set(by_channel[0]) == {a.generation}
        assert set(by_channel[1]) <= {b.generation, c.generation}
        assert by_channel[1].count(c.generation) == len(c.pending)
    finally:
        renderer.close()


def test_idle_worker_prefetches_the_features_under_the_view(rng):
    engine = _engine(rng, h=300, w=400)
    renderer, got = _renderer(engine)
    try:
        fit = View.fit(engine.size, (300, 400))  # scale 1: no neural work needed to refine
        renderer.request(fit, "ddir")
        features = engine.methods["ddir"].features
        total = features.grid_shape[0] * features.grid_shape[1]
        deadline = time.time() + 60
        while time.time() < deadline and features.tiles_encoded < total:
            time.sleep(0.05)
        assert features.tiles_encoded == total  # the whole photo was in view
        got.done.clear()
        zoomed = renderer.request(View.centred(3.0, (150, 200), (256, 256)), "ddir")
        assert got.done.wait(60)
        assert zoomed.pending and features.tiles_encoded == total  # nothing encoded again
    finally:
        renderer.close()


def test_prefetching_encodes_the_first_pass_before_the_method(rng):
    """A zoom shows the first pass first, so the idle worker encodes its features first."""
    engine = Engine(_photo(rng, h=300, w=400), device="cpu")
    torch.manual_seed(0)
    engine.add_model("ddir", make_model({"model": "ddir", **SMALL}),
                     first_pass=make_model({"model": "ddir", **SMALL}))
    renderer, _ = _renderer(engine)
    try:
        plan = renderer._prefetch_plan(View.fit(engine.size, (300, 400)), "ddir")
    finally:
        renderer.close()
    names = [neural.name for neural, _, _, _ in plan]
    first = engine.first_pass("ddir")
    fast, own = engine.first_passes[first].features, engine.methods["ddir"].features
    assert names == [first] * (fast.grid_shape[0] * fast.grid_shape[1]) + \
        ["ddir"] * (own.grid_shape[0] * own.grid_shape[1])
    assert all(not references for *_, references in plan)  # no tone anchor in these models


def test_under_a_photo_seen_whole_the_idle_worker_measures_the_first_zoom_s_anchor(
        rng, monkeypatch):
    """After the features, the anchor at x1.5 and x3 under the view, for the models that
    keep their projections and have an anchor (a first pass), not for a model that does not
    keep them, and only under a view at x1 or less. A zoom to x2.5 then measures no anchor
    tile and shows the pixels of an engine that measured them itself."""
    photo = _photo(rng, h=300, w=400)

    def engine_with_first_pass():
        torch.manual_seed(0)
        engine = Engine(photo, device="cpu")
        own, fast = (make_model({"model": "ddir", **SMALL}) for _ in range(2))
        own.tone_anchor = fast.tone_anchor = True
        engine.add_model("ddir", own, first_pass=fast)
        return engine

    engine = engine_with_first_pass()
    first = engine.first_pass("ddir")
    fast = engine.first_passes[first]
    renderer, _ = _renderer(engine)
    try:
        fit = View.fit(engine.size, (300, 400))
        with monkeypatch.context() as m:  # as the paper-size models
            m.setattr(engine.methods["ddir"].features, "keep_projections", False)
            plan = renderer._prefetch_plan(fit, "ddir")
        anchored = [(neural.name, references) for neural, _, _, references in plan
                    if references]
        tiles = fast.features.grid_shape[0] * fast.features.grid_shape[1]
        assert anchored == [(first, (1.5, 3.0))] * tiles
        assert plan[-tiles:] == [(fast, ty, tx, (1.5, 3.0)) for _, ty, tx, _ in plan[:tiles]]
        assert not any(refs for *_, refs in renderer._prefetch_plan(fit.zoomed(1.2), "ddir"))
        measured = []
        real = fast._measure_tiles
        monkeypatch.setattr(fast, "_measure_tiles",
                            lambda tiles, *a, **k: measured.extend(tiles) or real(tiles, *a, **k))
        renderer.request(fit, "ddir")
        anchor_tiles = math.ceil(300 / methods_module.ANCHOR_TILE) * \
            math.ceil(400 / methods_module.ANCHOR_TILE)
        deadline = time.time() + 60
        while time.time() < deadline and len(measured) < 2 * anchor_tiles:
            time.sleep(0.05)
        assert len(measured) == 2 * anchor_tiles  # the whole photo, at both references
        time.sleep(0.2)
        measured.clear()
        view = View.centred(2.5, (150, 200), (256, 256))
        pixels = engine.render_region(first, 2.5, view.origin, view.size)
        assert measured == []
    finally:
        renderer.close()
    reference = engine_with_first_pass()
    np.testing.assert_array_equal(
        pixels, reference.render_region(first, 2.5, view.origin, view.size))


def test_model_work_takes_turns_across_threads(rng):
    """The render worker and an export (two threads) never run model work at once: torch's
    thread pool is the process's, and both at once would use twice the cores."""
    engine = Engine(_photo(rng), device="cpu")
    state = {"inside": 0, "most": 0}
    lock = threading.Lock()

    class Recording:
        name = "recording"

        def render(self, scale, offset, shape, cancelled=None, hurry=False):
            with lock:
                state["inside"] += 1
                state["most"] = max(state["most"], state["inside"])
            time.sleep(0.002)
            with lock:
                state["inside"] -= 1
            return np.zeros((*shape, 3), np.float32)

    engine.methods["recording"] = Recording()

    def work():
        for _ in range(30):
            engine.render_region("recording", 2.0, (0, 0), (8, 8))

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert state["most"] == 1
