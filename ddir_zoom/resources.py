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


def bundled_weights(model: str, preset: str = "compact") -> Path:
    """Path of a shipped model file, e.g. resources/weights/ddir_compact.safetensors (it may
    not exist in a checkout without trained weights)."""
    return resource("weights", f"{model}_{preset}.safetensors")
