"""Build a model from its plain config (the one a checkpoint stores), or from a named preset."""

from __future__ import annotations

import math
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
    # slower; narrower ones gained little then, before the hidden layers ran fused (below).
    "compact": {"encoder": {"n_resblocks": 4, "n_feats": 32}, "hidden": [64, 64]},
    # The viewer's first pass (a student distilled from the paper-size DDIR): one encoder of
    # two residual blocks x 32 channels shared by both branches, [32, 32] MLPs. Since the
    # hidden layers run fused (models.implicit), halving the MLPs' width nearly halves
    # decoding: 1.19 against 0.63 megapixels per second for DDIR (benchmarks/decode.py
    # --presets student,compact, results/decode_student_cpu.txt). Encoding is most of what a
    # cold view adds: two blocks encode a 128-pixel tile with its halo in 26.9 ms against
    # 56.2 ms for the compact four (both encoders; one block, 16.9 ms, moved tones), and one
    # shared encoder in about half of two (results/encode_cpu.txt); see
    # resources/weights/ddir_student.md for what each cost in quality.
    "student": {"encoder": {"n_resblocks": 2, "n_feats": 32}, "hidden": [32, 32],
                "shared_encoder": True},
}

_ENCODER_KEYS = {"n_resblocks", "n_feats", "res_scale"}
# Bounds on what a model file may ask for, far above any useful model (the paper's is 16 blocks
# x 64 channels, MLPs of 4 x 256) and far below what would exhaust memory or time: a model file
# is data, and a 644-byte header must not make us allocate gigabytes.
LIMITS = {"n_resblocks": (1, 128), "n_feats": (1, 512), "hidden_width": (1, 2048),
          "hidden_layers": (1, 16), "res_scale": (1e-3, 10.0)}
MAX_PARAMETERS = 100_000_000


def _bounded_int(name: str, value: Any, key: str) -> int:
    low, high = LIMITS[key]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"bad {name} {value!r}: an integer from {low} to {high}")
    return value


def check_config(config: Any) -> dict[str, Any]:
    """The config if it describes a model we can build in bounded memory; ValueError naming
    the offending entry otherwise."""
    if not isinstance(config, dict):
        raise ValueError(f"a model config is a dict, got {type(config).__name__}")
    name = config.get("model")
    if not isinstance(name, str) or name not in MODELS:
        raise ValueError(f"unknown model {name!r} (known: {', '.join(sorted(MODELS))})")
    encoder = config.get("encoder")
    hidden = config.get("hidden")
    if not isinstance(encoder, dict) or not set(encoder) <= _ENCODER_KEYS:
        raise ValueError(f"bad encoder config {encoder!r} (keys: {sorted(_ENCODER_KEYS)})")
    for key in ("n_resblocks", "n_feats"):
        if key in encoder:
            _bounded_int(f"encoder {key}", encoder[key], key)
    if "res_scale" in encoder:
        value = encoder["res_scale"]
        low, high = LIMITS["res_scale"]
        if (isinstance(value, bool) or not isinstance(value, int | float)
                or not math.isfinite(value) or not low <= value <= high):
            raise ValueError(f"bad encoder res_scale {value!r}: a number from {low} to {high}")
    if not isinstance(hidden, list) or not hidden:
        raise ValueError(f"bad decoder hidden widths {hidden!r}")
    shared = config.get("shared_encoder", False)
    if not isinstance(shared, bool):
        raise ValueError(f"bad shared_encoder {shared!r}: true or false")
    low, high = LIMITS["hidden_layers"]
    if not low <= len(hidden) <= high:
        raise ValueError(f"bad decoder hidden widths {hidden!r}: {low} to {high} layers")
    for width in hidden:
        _bounded_int("decoder hidden width", width, "hidden_width")
    return config


def make_model(config: dict[str, Any]) -> ImplicitSR:
    """Model from {'model': 'ddir'|'liif', 'encoder': {...}, 'hidden': [...]} and, optionally,
    'shared_encoder': true (one encoder for DDIR's two branches).

    Raises ValueError with the reason for an unknown model or a malformed or unbounded config.
    """
    check_config(config)
    return MODELS[config["model"]](encoder=config["encoder"], hidden=config["hidden"],
                                   shared_encoder=config.get("shared_encoder", False))


def preset_config(model: str, preset: str) -> dict[str, Any]:
    """Config of `model` ('ddir' or 'liif') at `preset` (a key of PRESETS)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r} (known: {', '.join(PRESETS)})")
    config = {"model": model, **PRESETS[preset]}
    if model in MODELS and len(MODELS[model].branches) < 2:
        config.pop("shared_encoder", None)  # one branch: nothing to share
    return config


def make_preset(model: str, preset: str) -> ImplicitSR:
    return make_model(preset_config(model, preset))
