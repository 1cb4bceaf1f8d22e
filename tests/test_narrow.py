"""Starting a narrow student from a wide one (`training.narrow`, `train.py --init`)."""

from __future__ import annotations

import pytest
import torch

from ddir_zoom.models import make_model, make_preset
from tests.conftest import psnr, render_upscale
from training import narrow, pretrained

SMALL = {"encoder": {"n_resblocks": 1, "n_feats": 8}}


def _narrow(wide):
    """A fresh model like `wide` with MLPs half as wide."""
    return make_model({**wide.config, "hidden": [w // 2 for w in wide.hidden]})


@pytest.mark.parametrize("name", ["ddir", "liif"])
def test_narrowing_to_the_same_width_copies_the_model(name):
    torch.manual_seed(0)
    source = make_model({"model": name, **SMALL, "hidden": [16, 16]}).eval()
    torch.manual_seed(1)
    model = make_model({"model": name, **SMALL, "hidden": [16, 16]}).eval()
    narrow.narrow_into(model, source)
    lr = torch.rand(1, 3, 12, 14)
    assert torch.equal(render_upscale(model, lr, 2.3), render_upscale(source, lr, 2.3))


def test_the_units_kept_are_those_that_carry_the_most():
    weight_in = torch.ones(6, 4)
    weight_out = torch.ones(3, 6)
    weight_out[:, [1, 4]] = 0.01  # units 1 and 4 barely reach the next layer
    weight_in[2] = 0.01           # unit 2 barely reads its input
    assert narrow.kept_units(weight_in, weight_out, 3).tolist() == [0, 3, 5]


def test_narrowing_refuses_what_it_cannot_narrow():
    wide = make_model({"model": "ddir", **SMALL, "hidden": [16, 16]})
    for config in ({"model": "ddir", **SMALL, "hidden": [32, 16]},       # wider
                   {"model": "ddir", **SMALL, "hidden": [8, 8, 8]},      # deeper
                   {"model": "liif", **SMALL, "hidden": [8, 8]},         # another kind
                   {"model": "ddir", "encoder": {"n_resblocks": 1, "n_feats": 4},
                    "hidden": [8, 8]}):                                  # other encoders
        model = make_model(config)
        assert not narrow.can_narrow(model, wide)
        with pytest.raises(ValueError):
            narrow.narrow_into(model, wide)


@pytest.mark.parametrize("seed", [0, 2])
def test_a_narrowed_and_refitted_model_stays_close_to_the_wide_one(seed):
    """Half the units of a compact DDIR's MLPs cut: the refit on calibration crops brings the
    output far closer to the wide model's than the cut alone, on a crop it was not refitted on.
    (On the previous shipped 64-wide student, 35 dB against 12 dB.)"""
    torch.manual_seed(seed)
    wide = make_preset("ddir", "compact").eval()
    cut = _narrow(wide).eval()
    narrow.narrow_into(cut, wide)
    refitted = _narrow(wide).eval()
    narrow.narrow_into(refitted, wide, narrow.calibration_crops(96), queries=2048)
    photo = narrow.calibration_crops(160)[0][..., 96:, 96:]  # apart from the 96-pixel crops
    for scale in (1.7, 3.2):
        target = render_upscale(wide, photo, scale)
        refit_psnr = psnr(render_upscale(refitted, photo, scale), target)
        assert refit_psnr > 40.0
        assert refit_psnr > psnr(render_upscale(cut, photo, scale), target) + 8.0


def test_init_from_a_wider_model_narrows_it():
    torch.manual_seed(0)
    wide = make_preset("ddir", "compact").eval()
    model = _narrow(wide)
    copied = pretrained.init_from(model, wide)
    assert set(copied) == set(model.state_dict())
    for key, value in wide.state_dict().items():
        if key.startswith("encoders."):
            assert torch.equal(model.state_dict()[key], value), key
