"""Arbitrary-scale super-resolution models in torch: EDSR encoder, local implicit decoder, LIIF,
DDIR, presets and checkpoints. No Qt."""

from ddir_zoom.models.base import ImplicitSR
from ddir_zoom.models.checkpoint import (
    CheckpointError,
    load_checkpoint,
    read_header,
    save_checkpoint,
)
from ddir_zoom.models.ddir import DDIR
from ddir_zoom.models.device import describe, pick_device
from ddir_zoom.models.geometry import upscale_queries
from ddir_zoom.models.implicit import LatentGrid, local_ensemble
from ddir_zoom.models.liif import LIIF
from ddir_zoom.models.registry import MODELS, PRESETS, make_model, make_preset, preset_config

__all__ = [
    "DDIR",
    "LIIF",
    "MODELS",
    "PRESETS",
    "CheckpointError",
    "ImplicitSR",
    "LatentGrid",
    "describe",
    "load_checkpoint",
    "local_ensemble",
    "make_model",
    "make_preset",
    "pick_device",
    "preset_config",
    "read_header",
    "save_checkpoint",
    "upscale_queries",
]
