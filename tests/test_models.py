"""Models: sizes, the exact fast path, LIIF's conventions, tiled features, chunking, devices."""

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from ddir_zoom.models import (
    LatentGrid,
    geometry,
    implicit,
    make_model,
    make_preset,
    pick_device,
    upscale_queries,
)
from ddir_zoom.models.upscale import upscale_image

TINY = {"encoder": {"n_resblocks": 2, "n_feats": 8}, "hidden": [16, 16]}


def _model(name, preset=None, seed=0):
    torch.manual_seed(seed)
    model = make_preset(name, preset) if preset else make_model({"model": name, **TINY})
    # Random non-zero biases so that no term can hide behind a zero.
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 1:
                p.normal_(0, 0.1)
    return model.eval()


def _queries(scale, shape, batch=1, offset=(0, 0)):
    coords, cells = upscale_queries(scale, shape, offset)
    return coords[None].expand(batch, -1, -1), cells[None].expand(batch, -1, -1)


def test_paper_sizes_match_the_paper():
    # PAPER.md: EDSR-LIIF about 1.57 M parameters, EDSR-DDIR about 3.15 M.
    def count(m):
        return sum(p.numel() for p in m.parameters()) / 1e6

    assert count(make_preset("liif", "paper")) == pytest.approx(1.57, abs=0.01)
    assert count(make_preset("ddir", "paper")) == pytest.approx(3.15, abs=0.01)
    ddir = make_preset("ddir", "paper")
    assert ddir.decoders["deformation"].mlp.linears[0].in_features == 644
    assert ddir.decoders["sr"].mlp.linears[0].in_features == 583
    assert ddir.flops()["decode_plain_per_output_pixel"] == pytest.approx(5.7e6, rel=0.02)


@pytest.mark.parametrize("name", ["liif", "ddir"])
@pytest.mark.parametrize("preset", [None, "student", "compact", "paper"])
@pytest.mark.parametrize("scale", [1.7, 3.0, 4.0, 16.0])
def test_fast_path_equals_plain_path(name, preset, scale):
    model = _model(name, preset)
    lr = torch.rand(2, 3, 9, 11)
    shape = (min(40, round(9 * scale)), min(40, round(11 * scale)))
    coords, cells = _queries(scale, shape, batch=2)
    with torch.no_grad():
        features = model.encode(lr)
        appearance = model.appearance_embedding(features)
        plain = model.decode_plain(features, coords, cells.float(), appearance)
        grids = {b: LatentGrid(v) for b, v in model.project(features).items()}
        fast = model.decode(grids, coords, cells.float(), (9, 11), appearance)
    for key in plain:
        assert (fast[key] - plain[key]).abs().max() < 1e-5, key


def _liif_reference(model, lr, hr_shape):
    """LIIF's query_rgb as its paper and code describe it, written independently: normalised
    coordinates in [-1, 1], F.unfold of the whole feature map, nearest latents by grid_sample
    after shifting by +-1 latent radius, areas swapped diagonally."""
    feat = model.encode(lr)["sr"]
    h, w = feat.shape[-2:]
    unfolded = F.unfold(feat, 3, padding=1).view(1, -1, h, w)

    def centres(n):
        r = 1.0 / n
        return -1 + r + 2 * r * torch.arange(n, dtype=torch.float32)

    ys, xs = centres(hr_shape[0]), centres(hr_shape[1])
    coord = torch.stack(torch.meshgrid(ys, xs, indexing="ij"), -1).view(1, -1, 2)
    cell = torch.tensor([2 / hr_shape[0], 2 / hr_shape[1]]).expand_as(coord)
    feat_coord = torch.stack(torch.meshgrid(centres(h), centres(w), indexing="ij"), 0)[None]
    preds, areas = [], []
    for vy in (-1, 1):
        for vx in (-1, 1):
            shifted = coord.clone()
            shifted[..., 0] += vy / h + 1e-6
            shifted[..., 1] += vx / w + 1e-6
            shifted.clamp_(-1 + 1e-6, 1 - 1e-6)
            grid = shifted.flip(-1).unsqueeze(1)
            q_feat = F.grid_sample(unfolded, grid, mode="nearest", align_corners=False)
            q_coord = F.grid_sample(feat_coord, grid, mode="nearest", align_corners=False)
            q_feat, q_coord = (t[:, :, 0].permute(0, 2, 1) for t in (q_feat, q_coord))
            rel = (coord - q_coord) * torch.tensor([h, w])
            rel_cell = cell * torch.tensor([h, w])
            preds.append(model.decoders["sr"].mlp(torch.cat([q_feat, rel, rel_cell], -1)))
            areas.append((rel[..., 0] * rel[..., 1]).abs() + 1e-9)
    total = torch.stack(areas).sum(0)
    weights = [areas[3], areas[2], areas[1], areas[0]]
    return sum(p * (a / total).unsqueeze(-1) for p, a in zip(preds, weights, strict=True))


@pytest.mark.skipif(not implicit._fused_available(), reason="this torch has no oneDNN fused linear")
def test_fused_hidden_layers_equal_addmm_in_inference_and_fall_back_for_training(monkeypatch):
    """The fast path's hidden layers up to FUSED_MAX_WIDTH wide run as one oneDNN product with
    bias and ReLU in inference: the same values as addmm then ReLU. Wider ones, and any that
    autograd follows (training), take addmm."""
    torch.manual_seed(0)
    calls = []
    real = torch.ops.mkldnn._linear_pointwise

    def spy(*args):
        calls.append(args[1].shape[0])
        return real(*args)

    monkeypatch.setattr(torch.ops.mkldnn, "_linear_pointwise", spy)
    x = torch.relu(torch.randn(999, 64))
    for width in (64, implicit.FUSED_MAX_WIDTH + 1):
        layer = torch.nn.Linear(x.shape[1], width)
        expected = torch.relu(torch.addmm(layer.bias, x, layer.weight.t()))
        with torch.inference_mode():
            got = implicit._linear_relu(x, layer)
        trained = implicit._linear_relu(x, layer)  # grad enabled, weights require it
        assert (got - expected).abs().max() < 1e-5
        assert trained.requires_grad and (trained - expected).abs().max() < 1e-5
    assert calls == [64]


@pytest.mark.parametrize("scale", [2.0, 2.5])
def test_plain_path_follows_liif_pixel_centre_convention(scale):
    """Output pixel (r, c) at scale s is the LR point ((r + 0.5) / s, (c + 0.5) / s): the same
    pixels LIIF's own algorithm gives, in its normalised coordinates."""
    model = _model("liif", "compact")
    lr = torch.rand(1, 3, 8, 10)
    hr_shape = (int(8 * scale), int(10 * scale))
    coords, cells = _queries(scale, hr_shape)
    with torch.no_grad():
        ours = model.decode_plain(model.encode(lr), coords, cells.float())["rgb"]
        reference = _liif_reference(model, lr, hr_shape)
    assert (ours - reference).abs().max() < 1e-5


def test_query_coordinates_are_pixel_centres():
    coords, cells = upscale_queries(2.0, (2, 4))
    assert coords[:4, 1].tolist() == [0.25, 0.75, 1.25, 1.75]
    assert coords[::4, 0].tolist() == [0.25, 0.75]
    assert cells[0].tolist() == [0.5, 0.5]
    part, _ = upscale_queries(2.0, (1, 2), (1, 2))
    assert part.tolist() == [[0.75, 1.25], [0.75, 1.75]]


@pytest.mark.parametrize("name", ["liif", "ddir"])
def test_tiled_features_equal_whole_image_features(name):
    """Encoding a tile with `halo` pixels of context gives the whole image's features and
    projections inside the tile; projections then decode identically from a LatentGrid with an
    offset origin."""
    model = _model(name, "compact")
    lr = torch.rand(1, 3, 64, 70)
    halo = model.halo
    with torch.no_grad():
        whole = model.project(model.encode(lr))
        y0, x0, th, tw = 20, 25, 12, 14
        top, left = max(0, y0 - halo), max(0, x0 - halo)
        crop = lr[..., top:y0 + th + halo, left:x0 + tw + halo]
        tile = model.project(model.encode(crop))
        for branch in whole:
            inner = tile[branch][:, y0 - top:y0 - top + th, x0 - left:x0 - left + tw]
            expected = whole[branch][:, y0:y0 + th, x0:x0 + tw]
            assert (inner - expected).abs().max() < 1e-4

        # Queries whose neighbours lie in the tile decode the same from the tile alone.
        scale = 3.0
        coords, cells = _queries(scale, (20, 20), offset=(int((y0 + 1) * scale),
                                                           int((x0 + 1) * scale)))
        appearance = model.appearance_embedding(model.encode(lr))
        full = model.decode({b: LatentGrid(v) for b, v in whole.items()}, coords,
                            cells.float(), (64, 70), appearance)["rgb"]
        grids = {b: LatentGrid(tile[b][:, y0 - top:y0 - top + th, x0 - left:x0 - left + tw]
                               .contiguous(), (y0, x0)) for b in tile}
        part = model.decode(grids, coords, cells.float(), (64, 70), appearance)["rgb"]
    assert (full - part).abs().max() < 1e-4


def test_grid_too_small_is_an_error():
    model = _model("liif")
    with torch.no_grad():
        grid = model.project(model.encode(torch.rand(1, 3, 10, 10)))["sr"]
    coords, cells = _queries(2.0, (20, 20))
    with pytest.raises(IndexError):
        model.decode({"sr": LatentGrid(grid[:, :5, :5].contiguous())}, coords, cells.float(),
                     (10, 10))


class _LargestTensor(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, tuple | list) else [out]:
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


@pytest.mark.parametrize("path", ["fast", "plain"])
def test_no_unfolded_feature_map_is_built(path):
    """Decoding a chunk never allocates anything near 9 x C x H x W of the image."""
    model = _model("ddir", "compact")
    lr = torch.rand(1, 3, 96, 96)
    with torch.no_grad():
        features = model.encode(lr)
        appearance = model.appearance_embedding(features)
        grids = {b: LatentGrid(v) for b, v in model.project(features).items()}
        coords, cells = _queries(2.0, (16, 32))
        unfolded = 9 * model.feat_dim * 96 * 96
        with _LargestTensor() as watch:
            if path == "fast":
                model.decode(grids, coords, cells.float(), (96, 96), appearance)
            else:
                model.decode_plain(features, coords, cells.float(), appearance)
    # The plain path pads the (C, H, W) map once; nothing approaches the unfolded size.
    assert watch.largest < unfolded / 4


def test_chunked_query_equals_one_chunk():
    model = _model("ddir")
    lr = torch.rand(1, 3, 12, 12)
    grids, appearance = model.prepare(lr)
    coords, cells = _queries(2.7, (30, 31))
    one = model.query(grids, coords, cells.float(), (12, 12), appearance, chunk=10**6)
    many = model.query(grids, coords, cells.float(), (12, 12), appearance, chunk=37)
    assert (one - many).abs().max() < 1e-6


@pytest.mark.parametrize(("scale", "shape", "offset"), [
    (4.0, (16, 24), (0, 0)), (1.37, (9, 30), (5, 3)), ((2.3, 3.1), (7, 20), (40, 2)),
    (2.0, (1, 50), (0, 0)), ((0.7, 5.5), (12, 9), (3, 60))])
def test_grid_ensemble_equals_local_ensemble_bit_for_bit(scale, shape, offset):
    """Including queries outside the image (clamped) and a grid offset into it."""
    ys, xs = geometry.grid_axes(scale, shape, offset)
    coords, _ = upscale_queries(scale, shape, offset)
    a = implicit.local_ensemble(coords[None], (20, 30))
    b = implicit.grid_ensemble(ys, xs, (20, 30))
    for name in ("index_y", "index_x", "rel", "weights"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    origin = (int(a.index_y.min()), int(a.index_x.min()))
    size = (20 - origin[0], 30 - origin[1])
    assert torch.equal(a.flat_index(origin, *size), b.flat_index(origin, *size))
    with pytest.raises(IndexError):
        b.flat_index((origin[0] + 1, origin[1]), *size)


@pytest.mark.parametrize("name", ["liif", "ddir"])
@pytest.mark.parametrize("chunk", [None, 40, 7])
def test_grid_query_equals_query(name, chunk):
    """Chunks of whole rows (None: one chunk per core), of several rows, and of parts of a row
    (7 queries, shorter than a row) decode exactly what `query` does."""
    model = _model(name)
    lr = torch.rand(1, 3, 12, 14)
    grids, appearance = model.prepare(lr)
    coords, cells = _queries((2.7, 1.9), (17, 23), offset=(3, 2))
    expected = model.query(grids, coords, cells.float(), (12, 14), appearance, chunk=chunk)
    ys, xs = geometry.grid_axes((2.7, 1.9), (17, 23), (3, 2))
    got = model.query_grid(grids, ys, xs, (1 / 2.7, 1 / 1.9), (12, 14), appearance, chunk=chunk)
    assert torch.equal(got, expected)


def test_upscale_image_shape_and_range():
    model = _model("ddir")
    out = upscale_image(model, torch.rand(10, 13, 3).numpy(), 2.5)
    assert out.shape == (25, 32, 3)  # round(10 * 2.5), round(13 * 2.5) (banker's rounding)
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_channels_last_gives_the_same_features():
    model = _model("liif", "compact")
    lr = torch.rand(1, 3, 20, 24)
    with torch.no_grad():
        before = model.encode(lr)["sr"]
        after = model.use_channels_last().encode(lr)["sr"]
    assert (before - after).abs().max() < 1e-4


def test_training_forward_gives_both_outputs_and_gradients():
    model = _model("ddir").train()
    coords = torch.rand(2, 50, 2) * 12
    cells = torch.full((2, 50, 2), 0.4)
    out = model(torch.rand(2, 3, 12, 12), coords, cells)
    assert set(out) == {"rgb", "deformation"}
    (out["rgb"].abs().mean() + out["deformation"].abs().mean()).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_config_validation():
    with pytest.raises(ValueError, match="unknown model"):
        make_model({"model": "esrgan", **TINY})
    with pytest.raises(ValueError, match="hidden"):
        make_model({"model": "ddir", "encoder": {}, "hidden": []})
    with pytest.raises(ValueError, match="encoder"):
        make_model({"model": "ddir", "encoder": {"layers": 3}, "hidden": [8]})
    with pytest.raises(ValueError, match="preset"):
        make_preset("ddir", "huge")


def test_device_choice():
    assert pick_device("cpu").type == "cpu"
    assert pick_device(None).type in {"cpu", "cuda", "mps"}
    with pytest.raises(ValueError):
        pick_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            pick_device("cuda")


@pytest.mark.skipif(not torch.ops.mkldnn._is_mkldnn_bf16_supported(),
                    reason="this CPU has no native bfloat16 products")
def test_bfloat16_decoding_stays_within_its_bound():
    """models.precision's approximation, on the shipped DDIR and the bundled photo at x1.5 and
    x4: at most 1 level of 255 from float32 anywhere, 0.1 level on average (measured on a 64
    pixel crop up to x5: 0.44 and 0.045)."""
    import numpy as np

    from ddir_zoom.imaging.io import load_photo
    from ddir_zoom.models import load_checkpoint
    from ddir_zoom.resources import bundled_weights, sample_photo

    photo = np.ascontiguousarray(load_photo(sample_photo()).rgb[100:148, 150:198])
    model, _ = load_checkpoint(bundled_weights("ddir"))
    for scale in (1.5, 4.0):
        exact = upscale_image(model.set_precision("float32"), photo, scale)
        fast = upscale_image(model.set_precision("bfloat16"), photo, scale)
        error = np.abs(fast - exact) * 255
        assert 0 < error.max() < 1.0 and error.mean() < 0.1
    assert model.precision == "bfloat16"
    with pytest.raises(ValueError, match="unknown precision"):
        model.set_precision("int8")
