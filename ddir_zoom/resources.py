"""Where the bundled files are: beside the package in a checkout, or in PyInstaller's bundle."""

from __future__ import annotations

import sys
from pathlib import Path


def resources_dir() -> Path:
    """The `resources/` folder: sys._MEIPASS/resources when frozen, else the checkout's."""
    frozen = getattr(sys, "_MEIPASS", None)
    if frozen:
        return Path(frozen) / "resources"
    return Path(__file__).resolve().parent.parent / "resources"


def resource(*parts: str) -> Path:
    return resources_dir().joinpath(*parts)


def sample_photo() -> Path:
    return resource("sample", "coffee.png")


BUNDLED_MODELS = {"ddir": "ddir_paper", "liif": "liif_official"}
"""The shipped model file of each method: DDIR at the paper's size, fine-tuned from the
official LIIF weights on tone-aligned real and synthetic pairs; LIIF with its authors' own
weights, for comparison (model cards beside the files)."""


def bundled_weights(model: str) -> Path:
    """Path of the shipped model file for 'ddir' or 'liif' (it may not exist in a checkout
    without trained weights)."""
    return resource("weights", f"{BUNDLED_MODELS[model]}.safetensors")


BUNDLED_FIRST_PASSES = {"ddir": "ddir_student"}
"""A method's fast first pass in the viewer: a compact DDIR distilled from the shipped one,
shown while the shipped model refines the view (`engine.progressive`)."""


def bundled_first_pass(model: str) -> Path | None:
    """Path of the shipped first pass of 'ddir' or 'liif', or None (none, or not in this
    checkout)."""
    name = BUNDLED_FIRST_PASSES.get(model)
    path = resource("weights", f"{name}.safetensors") if name else None
    return path if path is not None and path.exists() else None
