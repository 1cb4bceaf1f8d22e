"""The tone-consistency training term (training.tone_loss): zero for a zoom whose area means are
the photo's, the drift's size for one that shifts the tones, and decoded in the same pass as the
paper's loss without changing it."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from ddir_zoom.models import load_checkpoint, make_model
from training import train
from training.data import Mixture, SyntheticSource
from training.tone_loss import MARGIN, ToneLoss


def _nearest(lr: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """A zoom that repeats each LR pixel (normalised range, (B, N, 3)): its area mean over
    every pixel is the pixel itself."""
    rows = coords[..., 0].floor().long()
    cols = coords[..., 1].floor().long()
    picked = torch.stack([lr[b, :, rows[b], cols[b]].T for b in range(lr.shape[0])])
    return (picked - 0.5) / 0.5


def test_the_term_is_zero_for_a_consistent_zoom_and_the_drift_for_a_shifted_one():
    torch.manual_seed(0)
    lr = torch.rand(3, 3, 30, 30) * 0.8 + 0.1
    cells = torch.full((3, 5, 2), 1 / 3.0)
    tone = ToneLoss(1.0, window=10, sigma=1.25)
    coords, tone_cells, origins = tone.queries(lr, cells)
    assert coords.shape == (3, 2 * 10 * 10, 2) and tone_cells.shape == coords.shape
    assert torch.all(tone_cells == 1 / 3.0)
    # Every point lies in its block, MARGIN pixels in from the patch edge.
    assert coords.min() >= MARGIN and coords.max() <= 30 - MARGIN
    consistent = _nearest(lr, coords)
    assert float(tone.term(consistent, lr, origins)) == pytest.approx(0.0, abs=1e-6)
    # Brighter by 4 levels everywhere: the low-pass of a constant is the constant (renormalised
    # at the block's edge), in the normalised range.
    shift = 4 / 255
    brighter = consistent + shift / 0.5
    assert float(tone.term(brighter, lr, origins)) == pytest.approx(shift / 0.5, rel=1e-4)
    # Detail that averages out over each pixel (opposite at the two points) is not a drift.
    k = coords.shape[1] // 2
    detail = consistent.clone()
    detail[:, :k] += 0.05
    detail[:, k:] -= 0.05
    assert float(tone.term(detail, lr, origins)) == pytest.approx(0.0, abs=1e-6)


def test_a_patch_too_small_for_the_block_is_refused():
    with pytest.raises(ValueError, match="too small"):
        ToneLoss(1.0, window=12).queries(torch.zeros(1, 3, 16, 16), torch.ones(1, 4, 2))


def _photos(tmp_path, rng):
    photos = tmp_path / "photos"
    photos.mkdir()
    y, x = np.mgrid[0:160, 0:160] / 160
    image = np.stack([np.sin(7 * x + 2 * y), np.cos(5 * y - 3 * x), rng.random((160, 160))], -1)
    Image.fromarray((np.clip(0.5 + 0.3 * image, 0, 1) * 255).astype(np.uint8)).save(
        photos / "p.png")
    return photos


def test_the_term_joins_the_papers_loss_without_changing_it(tmp_path, rng):
    batch = Mixture([SyntheticSource([_photos(tmp_path, rng)])]).batch(
        np.random.default_rng(0), 2, 24, 128, deformation_target=True)
    torch.manual_seed(0)
    model = make_model({"model": "ddir", "encoder": {"n_resblocks": 1, "n_feats": 8},
                        "hidden": [16]})
    alone, alone_parts = train.loss_fn(model, batch)
    torch.manual_seed(1)
    both, parts = train.loss_fn(model, batch, tone=ToneLoss(2.0, window=8))
    assert {k: parts[k] for k in alone_parts} == pytest.approx(alone_parts, rel=1e-5)
    assert parts["tone"] > 0.0
    assert float(both.detach()) == pytest.approx(float(alone.detach()) + 2.0 * parts["tone"],
                                                 rel=1e-5)
    both.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_training_with_the_term_records_it(tmp_path, rng):
    photos = _photos(tmp_path, rng)
    out = tmp_path / "run"
    args = ["--model", "ddir", "--config", json.dumps(
        {"model": "ddir", "encoder": {"n_resblocks": 1, "n_feats": 8}, "hidden": [16]}),
        "--photos", str(photos), "--iterations", "2", "--batch", "2", "--patch", "24",
        "--queries", "128", "--val-every", "2", "--tone-loss", "0.5",
        "--tone-loss-window", "8", "--out", str(out)]
    assert train.main(args) == 0
    _, info = load_checkpoint(out / "best.safetensors")
    assert info["tone_loss"] == {"weight": 0.5, "window": 8, "sigma": 3.0}
    record = json.loads((out / "log.jsonl").read_text().splitlines()[-1])
    assert record["tone"] > 0.0
    # A resume may switch the term off (or change it).
    assert train.main(["--resume", str(out / "last.pt"), "--iterations", "4",
                       "--tone-loss", "0"]) == 0
    _, info = load_checkpoint(out / "last.safetensors")
    assert "tone_loss" not in info
