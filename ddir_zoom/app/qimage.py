"""Float RGB arrays to QImage, for display."""

from __future__ import annotations

import numpy as np
from PySide6.QtGui import QImage

from ddir_zoom.imaging.io import to_uint8


def to_qimage(rgb: np.ndarray) -> QImage:
    """A QImage that owns a copy of float RGB (h, w, 3) in [0, 1], as 8-bit RGB."""
    pixels = np.ascontiguousarray(to_uint8(rgb))
    h, w = pixels.shape[:2]
    image = QImage(pixels.data, w, h, 3 * w, QImage.Format.Format_RGB888)
    return image.copy()  # detach from the numpy buffer
