"""The navigator: a thumbnail of the whole photo in a corner of the viewer, with the visible part
outlined. Click or drag on it to move the view there. Shown only while the photo is larger than
its pane (zoomed in), as in Photoshop's and nomacs' navigators."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QMouseEvent, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QWidget

SIDE = 180
"""Longest side of the thumbnail, in logical pixels."""


def thumbnail_level(levels: list[np.ndarray], side: int = SIDE) -> np.ndarray:
    """The smallest pyramid level whose longest side still covers `side` pixels."""
    for level in reversed(levels):
        if max(level.shape[:2]) >= side:
            return level
    return levels[0]


class Navigator(QWidget):
    """centerRequested(y, x): the user clicked or dragged to image point (y, x)."""

    centerRequested = Signal(float, float)  # noqa: N815

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setToolTip("Navigator: click or drag to move the view")
        self.image: QImage | None = None
        self._pixels: np.ndarray | None = None
        self.image_size = (1, 1)  # (h, w) of the photo
        self.visible = QRectF()  # image pixels: the part in view
        self.hide()

    def set_photo(self, levels: list[np.ndarray], image_size: tuple[int, int]) -> None:
        level = thumbnail_level(levels)
        self._pixels = np.ascontiguousarray(level)
        h, w = self._pixels.shape[:2]
        self.image = QImage(self._pixels.data, w, h, 3 * w, QImage.Format.Format_RGB888)
        self.image_size = image_size
        k = SIDE / max(image_size)
        self.setFixedSize(max(8, round(image_size[1] * k)), max(8, round(image_size[0] * k)))

    def set_visible_region(self, rect: tuple[float, float, float, float] | None) -> None:
        """(y, x, h, w) of the photo in view; the navigator hides when all of it is."""
        if rect is None or self.image is None:
            self.hide()
            return
        y, x, h, w = rect
        self.visible = QRectF(x, y, w, h)
        ih, iw = self.image_size
        self.setVisible(h < ih - 0.5 or w < iw - 0.5)
        self.update()

    def _to_image(self, point: QPointF) -> tuple[float, float]:
        ih, iw = self.image_size
        return (point.y() / self.height() * ih, point.x() / self.width() * iw)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        painter = QPainter(self)
        if self.image is not None:
            painter.drawImage(QRectF(0, 0, self.width(), self.height()), self.image)
        ih, iw = self.image_size
        kx, ky = self.width() / iw, self.height() / ih
        r = self.visible
        painter.setPen(QPen(QColor(255, 200, 0), 2))
        painter.drawRect(QRectF(r.x() * kx, r.y() * ky, r.width() * kx, r.height() * ky))
        painter.setPen(QPen(QColor(0, 0, 0, 160), 1))
        painter.drawRect(QRectF(0, 0, self.width() - 1, self.height() - 1))
        painter.end()

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        self.centerRequested.emit(*self._to_image(event.position()))

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if event.buttons() & Qt.MouseButton.LeftButton:
            self.centerRequested.emit(*self._to_image(event.position()))
