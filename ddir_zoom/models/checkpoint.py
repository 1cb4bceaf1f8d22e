"""Self-describing model files: the architecture config and weights in one safetensors file.

Loading never runs code from the file (safetensors holds only tensors and a JSON header). The
config is checked, the model built from it, and every tensor's name and shape compared with the
model before any is used, so a corrupt file, another architecture or mismatched shapes give a
clear error.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_bytes

from ddir_zoom.imaging.io import atomic_output
from ddir_zoom.models.base import ImplicitSR
from ddir_zoom.models.registry import MAX_PARAMETERS, make_model
from ddir_zoom.models.tone_anchor import check_sigma

FORMAT = "ddir-zoom"
FORMAT_VERSION = 1


class CheckpointError(Exception):
    """A model file could not be used; the message names the file and the reason."""


def save_checkpoint(model: ImplicitSR, path: str | os.PathLike,
                    info: dict[str, Any] | None = None) -> Path:
    """Write `model` (its config and weights) and free-form JSON `info` (training data,
    command, results) atomically to `path`."""
    path = Path(path)
    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "config": json.dumps(model.config),
        "info": json.dumps(info or {}),
    }
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    # In memory first: a model file is small (bounded by MAX_PARAMETERS).
    data = safetensors_bytes(tensors, metadata=metadata)
    with atomic_output(path) as handle:
        handle.write(data)
    return path


def read_header(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Any]]:
    """(config, info) of a checkpoint, without loading its weights."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder, not a model file")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a safetensors model file, or it is corrupt "
                              f"({exc})") from None
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a ddir-zoom model file (no '{FORMAT}' header)")
    try:
        version = int(metadata.get("format_version", "0"))
    except ValueError:
        version = -1
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{path}: model file format version {metadata.get('format_version')}"
                              f" is not supported (this ddir-zoom reads version {FORMAT_VERSION})")
    try:
        config = json.loads(metadata["config"])
        info = json.loads(metadata.get("info", "{}"))
    except (KeyError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: damaged header ({exc})") from None
    return config, info


def load_checkpoint(
    path: str | os.PathLike,
    device: str | torch.device = "cpu",
    expect_model: str | None = None,
) -> tuple[ImplicitSR, dict[str, Any]]:
    """(model in eval mode on `device`, info) from a file written by `save_checkpoint`.

    expect_model: 'ddir' or 'liif' to refuse a file of the other kind.
    """
    path = Path(path)
    config, info = read_header(path)
    if expect_model is not None and config.get("model") != expect_model:
        raise CheckpointError(f"{path}: holds a {config.get('model')!r} model, "
                              f"not {expect_model!r}")
    try:
        # The architecture on the meta device: every tensor's name and shape, no memory.
        with torch.device("meta"):
            skeleton = make_model(config)
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: unusable architecture config ({exc})") from None
    expected = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    if sum(math.prod(s) for s in expected.values()) > MAX_PARAMETERS:
        raise CheckpointError(f"{path}: the architecture it declares has more than "
                              f"{MAX_PARAMETERS:,} parameters")
    try:
        with safe_open(str(path), framework="pt") as handle:
            names = set(handle.keys())
            missing = sorted(set(expected) - names)
            unexpected = sorted(names - set(expected))
            if missing or unexpected:
                raise CheckpointError(
                    f"{path}: weights do not match the {config['model']} architecture it "
                    f"declares (missing: {missing[:5]}, unexpected: {unexpected[:5]})")
            # Every shape and dtype is checked from the header before any tensor is read.
            for name, shape in expected.items():
                sliced = handle.get_slice(name)
                got = tuple(sliced.get_shape())
                if got != shape:
                    raise CheckpointError(
                        f"{path}: tensor {name} has shape {got}, the architecture needs {shape}")
                if sliced.get_dtype() not in _FLOAT_DTYPES:
                    raise CheckpointError(f"{path}: tensor {name} has dtype "
                                          f"{sliced.get_dtype()}, not a float type")
            state = {name: handle.get_tensor(name).float() for name in expected}
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{path}: corrupt weights ({exc})") from None
    model = make_model(config)
    for name, tensor in state.items():
        if not torch.isfinite(tensor).all():
            raise CheckpointError(f"{path}: tensor {name} holds NaN or infinite values")
    model.load_state_dict(state)
    model.tone_anchor = info.get("tone_anchor") is True
    model.tone_anchor_sigma = _anchor_sigma(path, info)
    checkerboard = info.get("tone_anchor_checkerboard", False)
    if not isinstance(checkerboard, bool):
        raise CheckpointError(f"{path}: bad tone_anchor_checkerboard {checkerboard!r} "
                              "(true or false)")
    model.tone_anchor_checkerboard = checkerboard
    return model.to(device).eval(), info


_FLOAT_DTYPES = {"F32", "F16", "BF16", "F64"}


def _anchor_sigma(path: Path, info: dict[str, Any]) -> float | None:
    """The tone anchor's low-pass a model file asks for (`models.tone_anchor.SIGMA`), or None."""
    value = info.get("tone_anchor_sigma")
    if value is None:
        return None
    try:
        return check_sigma(value)
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
