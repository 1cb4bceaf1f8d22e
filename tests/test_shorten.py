"""Starting a shallower student from a deeper one (`training.shorten`, `train.py --init`)."""

from __future__ import annotations

import pytest
import torch

from ddir_zoom.models import make_model
from tests.conftest import psnr, render_upscale
from training import narrow, pretrained, shorten
from training.shorten import shorten_into

HIDDEN = [16, 16]


def _ddir(blocks: int, feats: int = 8, hidden: list[int] = HIDDEN, name: str = "ddir"):
    return make_model({"model": name, "encoder": {"n_resblocks": blocks, "n_feats": feats},
                       "hidden": hidden}).eval()


def test_shortening_refuses_what_it_cannot_shorten():
    deep = _ddir(3)
    for model in (_ddir(3), _ddir(4),                      # as deep, deeper
                  _ddir(2, feats=4),                       # other width
                  _ddir(2, hidden=[8, 8]),                 # other MLPs
                  _ddir(2, name="liif")):                  # another kind
        assert not shorten.can_shorten(model, deep)
        with pytest.raises(ValueError):
            shorten_into(model, deep, narrow.calibration_crops(32))


def test_a_block_that_adds_nothing_is_the_one_dropped():
    """Block 1 of a 3-block source adds nothing (its last conv is zero): shortened to 2
    blocks, the model keeps blocks 0 and 2 and, its last conv refitted, encodes as the source
    does, up to the ridge term."""
    torch.manual_seed(0)
    source = _ddir(3)
    with torch.no_grad():
        for encoder in source.encoders.values():
            for p in encoder.body[1].body[2].parameters():
                p.zero_()
    model = _ddir(2)
    copied = shorten_into(model, source, narrow.calibration_crops(48))
    assert set(copied) == set(model.state_dict())
    for branch, encoder in model.encoders.items():
        deep = source.encoders[branch]
        assert torch.equal(encoder.body[1].body[0].weight, deep.body[2].body[0].weight)
    lr = narrow.calibration_crops(64)[0][..., :40, :40]
    with torch.no_grad():
        mine, theirs = model.encode(lr), source.encode(lr)
    for branch in mine:
        scale = theirs[branch].abs().max()
        assert (mine[branch] - theirs[branch]).abs().max() < 5e-2 * scale
    assert psnr(render_upscale(model, lr, 2.3), render_upscale(source, lr, 2.3)) > 45.0


@pytest.mark.parametrize("seed", [0, 1])
def test_the_refit_beats_dropping_blocks_alone(seed):
    """Half the blocks of a 4-block DDIR dropped: the chosen blocks with the refitted last conv
    stay far closer to the deep model than its first two blocks and its own last conv, on a
    crop the refit did not see. The blocks' residuals are scaled up, as training makes them
    (a fresh model's blocks add almost nothing)."""
    torch.manual_seed(seed)
    source = _ddir(4)
    with torch.no_grad():
        for encoder in source.encoders.values():
            for block in encoder.body[:-1]:
                block.body[2].weight.mul_(4.0)
    refitted = _ddir(2)
    shorten_into(refitted, source, narrow.calibration_crops(64))
    dropped = _ddir(2)
    with torch.no_grad():
        for branch, encoder in dropped.encoders.items():
            deep = source.encoders[branch]
            encoder.head.load_state_dict(deep.head.state_dict())
            for i in range(2):
                encoder.body[i].load_state_dict(deep.body[i].state_dict())
            encoder.body[2].load_state_dict(deep.body[4].state_dict())
        for branch, decoder in dropped.decoders.items():
            decoder.load_state_dict(source.decoders[branch].state_dict())
    photo = narrow.calibration_crops(160)[0][..., 96:, 96:]  # apart from the 64-pixel crops
    target = render_upscale(source, photo, 2.7)
    refit, drop = (psnr(render_upscale(m, photo, 2.7), target) for m in (refitted, dropped))
    assert refit > drop + 8.0


def test_init_from_a_deeper_model_shortens_it():
    torch.manual_seed(0)
    deep = _ddir(3)
    model = _ddir(1)
    copied = pretrained.init_from(model, deep)
    assert set(copied) == set(model.state_dict())
    for branch, decoder in model.decoders.items():
        for key, value in decoder.state_dict().items():
            assert torch.equal(value, deep.decoders[branch].state_dict()[key]), key
