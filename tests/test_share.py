"""One encoder shared by DDIR's two branches (`ImplicitSR.feature_of`) and starting such a
model from a DDIR with two (`training.share`, `train.py --init`)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from ddir_zoom.engine import Engine
from ddir_zoom.engine.features import feature_bytes_per_pixel
from ddir_zoom.imaging import Photo
from ddir_zoom.models import (
    CheckpointError,
    LatentGrid,
    load_checkpoint,
    make_model,
    save_checkpoint,
    upscale_queries,
)
from ddir_zoom.models.checkpoint import read_header
from tests.conftest import psnr, render_upscale
from training import narrow, pretrained
from training.share import can_share, share_into

SIZES = {"encoder": {"n_resblocks": 2, "n_feats": 8}, "hidden": [16, 16]}


def _ddir(shared: bool, seed: int = 0, name: str = "ddir", **sizes):
    torch.manual_seed(seed)
    config = {"model": name, **SIZES, **sizes}
    if shared:
        config["shared_encoder"] = True
    model = make_model(config)
    with torch.no_grad():  # non-zero biases, so that no term hides behind a zero
        for p in model.parameters():
            if p.ndim == 1:
                p.normal_(0, 0.1)
    return model.eval()


def test_a_shared_encoder_is_one_encoder_read_by_both_decoders():
    shared, own = _ddir(True), _ddir(False)
    assert list(shared.encoders) == ["sr"] and list(own.encoders) == ["deformation", "sr"]
    assert shared.feature_of == {"deformation": "sr", "sr": "sr"}
    assert shared.config["shared_encoder"] is True and "shared_encoder" not in own.config
    assert shared.halo == own.halo
    flops = shared.flops()["encode_per_lr_pixel"]
    assert flops * 2 == own.flops()["encode_per_lr_pixel"]
    assert feature_bytes_per_pixel(shared) * 2 == feature_bytes_per_pixel(own)
    lr = torch.rand(1, 3, 9, 11)
    with torch.no_grad():
        features = shared.encode(lr)
        assert list(features) == ["sr"]
        projections = shared.project(features)
        assert set(projections) == {"deformation", "sr"}
        # Both decoders read the one feature map: the deformation decoder's projection is its
        # own first layer over it.
        assert torch.equal(projections["deformation"],
                           shared.decoders["deformation"].project(features["sr"]))
    # LIIF has one branch: nothing to share, and its config says so.
    liif = _ddir(True, name="liif")
    assert not liif.shared_encoder and "shared_encoder" not in liif.config
    with pytest.raises(ValueError, match="shared_encoder"):
        make_model({"model": "ddir", **SIZES, "shared_encoder": "yes"})


@pytest.mark.parametrize("scale", [1.7, 4.0])
def test_a_shared_encoder_s_fast_path_equals_its_plain_path(scale):
    model = _ddir(True)
    lr = torch.rand(2, 3, 9, 11)
    coords, cells = upscale_queries(scale, (15, 19))
    coords, cells = coords[None].expand(2, -1, -1), cells[None].expand(2, -1, -1).float()
    with torch.no_grad():
        features = model.encode(lr)
        appearance = model.appearance_embedding(features)
        plain = model.decode_plain(features, coords, cells, appearance)
        grids = {b: LatentGrid(v) for b, v in model.project(features).items()}
        fast = model.decode(grids, coords, cells, (9, 11), appearance)
    for key in plain:
        assert (fast[key] - plain[key]).abs().max() < 1e-5, key


def test_a_shared_encoder_round_trips_through_a_model_file(tmp_path):
    model = _ddir(True)
    path = save_checkpoint(model, tmp_path / "shared.safetensors", {})
    config, _ = read_header(path)
    assert config["shared_encoder"] is True
    loaded, _ = load_checkpoint(path)
    assert loaded.shared_encoder
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    # A file whose config says two encoders but holds one is refused before any allocation.
    config = dict(model.config)
    del config["shared_encoder"]
    metadata = {"format": "ddir-zoom", "format_version": "1", "config": json.dumps(config),
                "info": "{}"}
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              str(tmp_path / "lying.safetensors"), metadata=metadata)
    with pytest.raises(CheckpointError, match="do not match"):
        load_checkpoint(tmp_path / "lying.safetensors")


def test_an_engine_renders_a_shared_encoder_s_tiles_as_its_full_render():
    """(Its feature tiles against the whole image: test_engine's tiled-features test.)"""
    model = _ddir(True)
    rgb = np.random.default_rng(0).random((70, 90, 3), dtype=np.float32)
    engine = Engine(Photo(rgb=rgb), device="cpu")
    engine.add_model("ddir", model)
    full = engine.render_region("ddir", 2.7, (0, 0), (189, 243))
    part = engine.render_region("ddir", 2.7, (40, 61), (90, 100))
    np.testing.assert_array_equal(part, full[40:130, 61:161])


def test_sharing_refuses_what_it_cannot_share():
    own = _ddir(False)
    for model in (_ddir(False),                                      # not shared
                  _ddir(True, hidden=[8, 8]),                        # other MLPs
                  _ddir(True, encoder={"n_resblocks": 1, "n_feats": 8})):  # other encoder
        assert not can_share(model, own)
        with pytest.raises(ValueError):
            share_into(model, own, narrow.calibration_crops(32))
    assert not can_share(_ddir(True), _ddir(True))


def test_when_the_branches_encode_alike_sharing_changes_nothing():
    """A source whose deformation encoder is its SR encoder: the refit finds the deformation
    decoder's own first layer again (up to the ridge term), so the shared model renders as the
    source does."""
    source = _ddir(False)
    with torch.no_grad():
        source.encoders["deformation"].load_state_dict(source.encoders["sr"].state_dict())
    model = _ddir(True, seed=1)
    copied = share_into(model, source, narrow.calibration_crops(48))
    assert set(copied) == set(model.state_dict())
    photo = narrow.calibration_crops(160)[0][..., 96:, 96:]  # apart from the 48-pixel crops
    assert psnr(render_upscale(model, photo, 2.3), render_upscale(source, photo, 2.3)) > 45.0


@pytest.mark.parametrize("seed", [0, 1])
def test_the_refit_beats_reading_the_sr_features_unchanged(seed):
    """Two different encoders: the deformation decoder refitted onto the SR encoder's features
    stays far closer to the source than the same decoder reading them unchanged, on a crop the
    refit did not see."""
    source = _ddir(False, seed=seed)
    with torch.no_grad():
        for encoder in source.encoders.values():
            for block in encoder.body[:-1]:
                block.body[2].weight.mul_(4.0)  # residuals as training makes them
    refitted = _ddir(True)
    pretrained.init_from(refitted, source)  # --init takes this path
    unchanged = _ddir(True)
    with torch.no_grad():
        unchanged.encoders["sr"].load_state_dict(source.encoders["sr"].state_dict())
        for branch, decoder in unchanged.decoders.items():
            decoder.load_state_dict(source.decoders[branch].state_dict())
    photo = narrow.calibration_crops(160)[0][..., 96:, 96:]
    target = render_upscale(source, photo, 2.7)
    refit, plain = (psnr(render_upscale(m, photo, 2.7), target) for m in (refitted, unchanged))
    assert refit > plain + 3.0
