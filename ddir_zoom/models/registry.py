"""Build a model from its plain config (the one a checkpoint stores), or from a named preset."""

from __future__ import annotations

from typing import Any

from ddir_zoom.models.base import ImplicitSR
from ddir_zoom.models.ddir import DDIR
from ddir_zoom.models.liif import LIIF

MODELS: dict[str, type[ImplicitSR]] = {"liif": LIIF, "ddir": DDIR}

PRESETS: dict[str, dict[str, Any]] = {
    # The paper's EDSR-baseline backbone: 16 blocks x 64 channels, MLPs of 4 x 256.
    "paper": {"encoder": {"n_resblocks": 16, "n_feats": 64}, "hidden": [256, 256, 256, 256]},
    # Sized by measurement (benchmarks/decode.py) for a 2-core CPU: 4 blocks x 32 channels
    # encode at about 1.8 s per LR megapixel with channels_last, and [64, 64] MLPs decode about
    # 0.6 megapixels per second for DDIR. Wider MLPs ([64, 64, 64], [96, 96]) were 20-35%
    # slower; narrower ones gain little because memory traffic, not arithmetic, dominates.
    "compact": {"encoder": {"n_resblocks": 4, "n_feats": 32}, "hidden": [64, 64]},
}

_ENCODER_KEYS = {"n_resblocks", "n_feats", "res_scale"}


def make_model(config: dict[str, Any]) -> ImplicitSR:
    """Model from {'model': 'ddir'|'liif', 'encoder': {...}, 'hidden': [...]}.

    Raises ValueError with the reason for an unknown model or a malformed config.
    """
    if not isinstance(config, dict):
        raise ValueError(f"a model config is a dict, got {type(config).__name__}")
    name = config.get("model")
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r} (known: {', '.join(sorted(MODELS))})")
    encoder = config.get("encoder")
    hidden = config.get("hidden")
    if not isinstance(encoder, dict) or not set(encoder) <= _ENCODER_KEYS:
        raise ValueError(f"bad encoder config {encoder!r} (keys: {sorted(_ENCODER_KEYS)})")
    if (not isinstance(hidden, list) or not hidden
            or not all(isinstance(h, int) and h > 0 for h in hidden)):
        raise ValueError(f"bad decoder hidden widths {hidden!r}")
    for key in ("n_resblocks", "n_feats"):
        value = encoder.get(key)
        if value is not None and (not isinstance(value, int) or value < (key == "n_feats")):
            raise ValueError(f"bad encoder {key}: {value!r}")
    return MODELS[name](encoder=encoder, hidden=hidden)


def preset_config(model: str, preset: str) -> dict[str, Any]:
    """Config of `model` ('ddir' or 'liif') at `preset` ('paper' or 'compact')."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r} (known: {', '.join(PRESETS)})")
    return {"model": model, **PRESETS[preset]}


def make_preset(model: str, preset: str) -> ImplicitSR:
    return make_model(preset_config(model, preset))
