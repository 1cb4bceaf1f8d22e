"""Photo I/O and reference resampling (pillow and numpy; no torch, no Qt)."""

from ddir_zoom.imaging.io import (
    DEFAULT_MAX_PIXELS,
    ImageLoadError,
    ImageSaveError,
    Photo,
    load_photo,
    save_photo,
    to_uint8,
)
from ddir_zoom.imaging.resample import output_size, resample_region, resize

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "ImageLoadError",
    "ImageSaveError",
    "Photo",
    "load_photo",
    "output_size",
    "resample_region",
    "resize",
    "save_photo",
    "to_uint8",
]
