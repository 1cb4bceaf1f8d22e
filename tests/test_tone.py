"""Tone fidelity: the zoomed image, shrunk back, has the photo's colours and brightness.

The measure itself is checked on outputs whose shift is known, then every shipped model file is
rendered on the bundled sample photo at x1.5, x2.3, x3, x5 and x8 (the tone anchor's reference
scales and zooms between them) and must stay within `training.tone`'s tolerance, at each of
those scales that the model was trained for: a model file records its training scales
(`info["train_scales"]`, x1.5 to x8 for our DDIR). The official LIIF weights were trained on x1
to x4 and are shipped unchanged, as the authors' model for comparison; past x4 they drift
(measured in the README's tone table), which is why our DDIR trains to x8.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ddir_zoom.imaging.io import load_photo
from ddir_zoom.models import load_checkpoint
from ddir_zoom.models.upscale import upscale_image
from ddir_zoom.resources import resource, sample_photo
from training.evaluate import bicubic_method
from training.tone import TOLERANCE, tone_error

SHIPPED = sorted(resource("weights").glob("*.safetensors"))
SCALES = (1.5, 2.3, 3.0, 5.0, 8.0)


@pytest.fixture(scope="module")
def crops() -> list[np.ndarray]:
    """Two 64-pixel crops of the sample photo: the cup's bright rim and the dark coffee."""
    rgb = load_photo(sample_photo()).rgb
    return [np.ascontiguousarray(rgb[y:y + 64, x:x + 64]) for y, x in ((100, 150), (220, 260))]


def _render(method, photo, s):
    return method(photo, (s, s), (round(photo.shape[0] * s), round(photo.shape[1] * s)))


def test_bicubic_keeps_tones(crops):
    for photo in crops:
        for s in SCALES:
            error = tone_error(_render(bicubic_method, photo, s), photo, s)
            assert error.ok() and error.mad_255 < 0.3


@pytest.mark.parametrize("change, caught_by", [
    (lambda x: x + 2.0 / 255, "mad"),             # two levels brighter
    (lambda x: x * np.float32([1.0, 1.0, 0.97]), "mad"),  # a 3% colour cast
    (lambda x: 0.5 + (x - 0.5) * 1.05, "contrast"),  # 5% more contrast
])
def test_shifts_are_caught(crops, change, caught_by):
    photo = crops[0]
    zoomed = np.clip(change(_render(bicubic_method, photo, 3.0)), 0, 1).astype(np.float32)
    error = tone_error(zoomed, photo, 3.0)
    assert not error.ok()
    if caught_by == "mad":
        assert error.mad_255 > TOLERANCE.mad_255
    else:
        assert error.contrast_255 > TOLERANCE.contrast_255


def test_there_are_shipped_models():
    assert SHIPPED, "no model files in resources/weights"


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_models_keep_tones(crops, path):
    model, info = load_checkpoint(path)
    low, high = info["train_scales"]
    scales = [s for s in SCALES if low <= s <= high]
    assert scales, f"{path.name} was trained on none of the scales checked"
    for photo in crops:
        for s in scales:
            with torch.no_grad():
                zoomed = upscale_image(model, photo, s)
            error = tone_error(zoomed, photo, s)
            assert error.ok(), f"{path.name} at x{s}: {error}"


def test_an_evaluation_row_is_judged_against_the_truth_not_the_degraded_input():
    """On a pair the LR's own low-pass is off by its degradation (here: its left half three
    levels darker, as blur and sharpening move block means): the truth itself must pass,
    and a zoom that moves further from it than the LR did must not."""
    from training import evaluate, report

    rng = np.random.default_rng(3)
    hr = np.clip(0.5 + 0.2 * np.kron(rng.standard_normal((12, 12)), np.ones((8, 8))), 0, 1)
    hr = hr[..., None].repeat(3, 2).astype(np.float32)
    lr = evaluate.resize(hr, scale=0.5, method="area")
    lr[:, : lr.shape[1] // 2] -= 3.0 / 255  # the degradation's tone change
    pair = evaluate.Pair("p", lr, hr, (2.0, 2.0))
    methods = {"truth": lambda *_: hr,
               "brighter": lambda *_: np.clip(hr + 3.0 / 255, 0, 1)}
    table = evaluate.score([pair], methods)
    assert table["truth"]["tone_mad_255"] > TOLERANCE.mad_255  # off the LR's tones ...
    assert table["truth"]["tone_ok"]                          # ... and right
    assert table["truth"]["truth_tone_mad_255"] < 0.05
    assert table["truth"]["lr_truth_tone_mad_255"] > 1.0
    assert not table["brighter"]["tone_ok"]
    assert table["brighter"]["truth_tone_excess_mad_255"] > TOLERANCE.mad_255
    assert report.tone_cell(table["truth"]).startswith("0.00 / 0.00 vs truth (LR 1.4")
    assert report.tone_cell(table["brighter"]).endswith("**shifted**")
