"""Hostile inputs: model files written to exhaust memory or time, or to crash the loader.

Every file is generated here. A model file is data: its header may declare any architecture, so
the config is bounded and every tensor is checked against the architecture (built on the meta
device, without memory) before anything real is allocated.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from ddir_zoom.models import CheckpointError, load_checkpoint, make_preset, save_checkpoint
from ddir_zoom.models import checkpoint as checkpoint_module

SMALL = {"encoder": {"n_resblocks": 1, "n_feats": 8}, "hidden": [16]}


def _model_file(path: Path, config, tensors=None) -> Path:
    """A ddir-zoom model file with any header and, by default, one tiny tensor."""
    tensors = tensors if tensors is not None else {"x": torch.zeros(2)}
    save_file(tensors, str(path), metadata={
        "format": "ddir-zoom", "format_version": "1",
        "config": config if isinstance(config, str) else json.dumps(config), "info": "{}"})
    return path


@pytest.mark.parametrize("config, message", [
    ({"model": "ddir", "encoder": {"n_feats": 8}, "hidden": [200000, 5000]}, "hidden width"),
    ({"model": "ddir", "encoder": {"n_resblocks": 200000}, "hidden": [16]}, "n_resblocks"),
    ({"model": "liif", "encoder": {"n_feats": 200000}, "hidden": [16]}, "n_feats"),
    ({"model": "liif", "encoder": {"n_feats": 8}, "hidden": [16] * 1000}, "layers"),
    ({"model": "liif", "encoder": {"res_scale": float("nan")}, "hidden": [16]}, "res_scale"),
    ({"model": "liif", "encoder": {"res_scale": "abc"}, "hidden": [16]}, "res_scale"),
    ({"model": "liif", "encoder": {"n_feats": True}, "hidden": [16]}, "n_feats"),
    ({"model": "liif", "encoder": {}, "hidden": [16.5]}, "hidden width"),
    ({"model": ["ddir"], "encoder": {}, "hidden": [16]}, "unknown model"),
    ([1, 2, 3], "config is a dict"),
])
def test_unbounded_or_malformed_configs_are_refused_at_once(tmp_path, config, message):
    path = _model_file(tmp_path / "evil.safetensors", config)
    started = time.perf_counter()
    with pytest.raises(CheckpointError, match=message) as caught:
        load_checkpoint(path)
    assert time.perf_counter() - started < 5.0
    assert str(path) in str(caught.value)


def test_shapes_are_checked_before_the_model_is_built(tmp_path, monkeypatch):
    """A header within bounds but tensors that do not fit it: refused from the header alone,
    no real model allocated (16 layers of 2048 would be a quarter of a gigabyte)."""
    config = {"model": "liif", "encoder": {"n_resblocks": 1, "n_feats": 8},
              "hidden": [2048] * 16}
    tensors = {k: torch.zeros(1) for k in make_preset("liif", "compact").state_dict()}
    built = []
    real = checkpoint_module.make_model

    def counting(cfg):
        model = real(cfg)
        built.append(next(model.parameters()).device.type)
        return model

    monkeypatch.setattr(checkpoint_module, "make_model", counting)
    path = _model_file(tmp_path / "mismatch.safetensors", config, tensors)
    with pytest.raises(CheckpointError, match=r"do not match|has shape"):
        load_checkpoint(path)
    assert built == ["meta"]


def test_non_float_tensors_are_refused(tmp_path):
    model = make_preset("liif", "compact")
    model.load_state_dict(make_preset("liif", "compact").state_dict())
    tensors = {k: v.to(torch.int32) for k, v in model.state_dict().items()}
    path = _model_file(tmp_path / "ints.safetensors", model.config, tensors)
    with pytest.raises(CheckpointError, match="dtype"):
        load_checkpoint(path)


def test_nan_weights_are_refused(tmp_path):
    model = make_preset("liif", "compact")
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    path = save_checkpoint(model, tmp_path / "nan.safetensors")
    with pytest.raises(CheckpointError, match="NaN"):
        load_checkpoint(path)


def test_pickle_payload_never_runs(tmp_path):
    import pickle

    class Boom:
        def __reduce__(self):
            return (Path.touch, (tmp_path / "ran",))

    path = tmp_path / "evil.safetensors"
    path.write_bytes(pickle.dumps(Boom()))
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    assert not (tmp_path / "ran").exists()


def test_a_folder_is_not_called_missing(tmp_path):
    with pytest.raises(CheckpointError, match="is a folder"):
        load_checkpoint(tmp_path)


def test_saved_model_files_are_readable_by_others(tmp_path):
    path = save_checkpoint(make_preset("liif", "compact"), tmp_path / "m.safetensors")
    assert path.stat().st_mode & 0o044 == 0o044
