"""A pane that shows the photo at the current view: frames and refined tiles from the engine,
mouse and wheel turned into zoom and pan requests, a rubber band to select a region.

A pane shows one render channel, or two side by side behind a draggable divider (the A/B wipe).
It does not decide the view: it asks its owner (the Viewer) through signals, and the Viewer
sets the frames it gets back.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QEvent, QPoint, QPointF, QRect, QRectF, QSize, Qt, Signal
from PySide6.QtGui import (
    QBrush,
    QColor,
    QFont,
    QImage,
    QMouseEvent,
    QNativeGestureEvent,
    QPainter,
    QPaintEvent,
    QPen,
    QPixmap,
    QResizeEvent,
    QWheelEvent,
)
from PySide6.QtWidgets import QRubberBand, QSizePolicy, QWidget

from ddir_zoom.engine import View
from ddir_zoom.engine.progressive import Frame, TileUpdate

WHEEL_STEP = 1.2 ** (1 / 120)
"""Zoom factor per unit of wheel angle: one notch (120 units) zooms by 1.2."""


class Layer:
    """One channel's picture: a uint8 canvas and the QImage over it."""

    def __init__(self, channel: int, label: str) -> None:
        self.channel = channel
        self.label = label
        self.method = ""  # the engine's name of the method shown
        self.generation = -1
        self.view: View | None = None
        self.canvas: np.ndarray | None = None
        self.image: QImage | None = None
        self.has_alpha = False
        self.done = 0
        self.total = 0
        self.to_refine = 0  # tiles the frame had left to refine when it was shown
        self.first_pass = 0  # of them, shown by the method's first pass so far

    def set_frame(self, frame: Frame, label: str) -> None:
        self.label = label
        self.method = frame.method
        self.generation = frame.generation
        self.view = frame.view
        self.canvas = np.ascontiguousarray(frame.image)
        h, w = self.canvas.shape[:2]
        self.image = QImage(self.canvas.data, w, h, 3 * w, QImage.Format.Format_RGB888)
        self.has_alpha = False
        self.done = frame.total - len(frame.pending)
        self.total = frame.total
        self.to_refine = len(frame.pending)
        self.first_pass = 0

    def set_alpha(self, alpha: np.ndarray | None) -> None:
        """Show the frame with this transparency (uint8, the frame's size) over a
        checkerboard; tiles keep arriving into the same canvas."""
        if alpha is None or self.canvas is None:
            return
        h, w = self.canvas.shape[:2]
        rgba = np.empty((h, w, 4), np.uint8)
        rgba[..., :3] = self.canvas
        rgba[..., 3] = alpha
        self.canvas = rgba
        self.image = QImage(rgba.data, w, h, 4 * w, QImage.Format.Format_RGBA8888)
        self.has_alpha = True

    def apply(self, update: TileUpdate) -> QRect | None:
        """Paste a refined tile if it belongs to the frame shown; its rect in canvas pixels."""
        if update.generation != self.generation or self.canvas is None:
            return None
        y, x, h, w = update.rect
        self.canvas[y:y + h, x:x + w, :3] = update.pixels
        self.done = update.done
        self.first_pass += not update.final
        return QRect(x, y, w, h)

    @property
    def refining(self) -> bool:
        return self.done < self.total


_CHECKERBOARD: QBrush | None = None


def checkerboard() -> QBrush:
    """The usual grey checkerboard shown where a photo is transparent (8-pixel squares)."""
    global _CHECKERBOARD
    if _CHECKERBOARD is None:
        tile = QPixmap(16, 16)
        tile.fill(QColor(204, 204, 204))
        painter = QPainter(tile)
        painter.fillRect(0, 0, 8, 8, QColor(153, 153, 153))
        painter.fillRect(8, 8, 8, 8, QColor(153, 153, 153))
        painter.end()
        _CHECKERBOARD = QBrush(tile)
    return _CHECKERBOARD


class ZoomPane(QWidget):
    """Displays layers; emits what the user does."""

    zoomRequested = Signal(float, QPointF)  # noqa: N815 - factor, anchor in device pixels
    panRequested = Signal(float, float)  # noqa: N815 - du, dv in device pixels
    cursorMoved = Signal(QPointF)  # noqa: N815 - position in device pixels, or (-1, -1)
    regionSelected = Signal(QRectF)  # noqa: N815 - rectangle in device pixels
    resized = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(160, 120)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.layers: list[Layer] = []
        self.wipe = False
        self.divider = 0.5  # wipe divider position, fraction of the width
        self.selection: QRectF | None = None  # in device pixels, drawn as an outline
        self.placeholder = ""  # said in the middle while there are no layers
        self._drag_start: QPointF | None = None
        self._dragging_divider = False
        self._band: QRubberBand | None = None
        self._band_origin = QPoint()
        self.grabGesture(Qt.GestureType.PinchGesture)

    # --- geometry in device pixels (what the engine renders) ---------------------------------
    def device_size(self) -> tuple[int, int]:
        """(height, width) in device pixels."""
        ratio = self.devicePixelRatioF()
        return max(1, round(self.height() * ratio)), max(1, round(self.width() * ratio))

    def to_device(self, point: QPointF) -> QPointF:
        return point * self.devicePixelRatioF()

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(800, 600)

    # --- content -----------------------------------------------------------------------------
    def set_layers(self, layers: list[Layer], wipe: bool) -> None:
        self.layers = layers
        self.wipe = wipe
        self.update()

    def apply(self, update: TileUpdate) -> None:
        for layer in self.layers:
            if layer.channel == update.channel:
                rect = layer.apply(update)
                if rect is not None:
                    ratio = self.devicePixelRatioF()
                    self.update(QRectF(rect.x() / ratio, rect.y() / ratio, rect.width() / ratio,
                                       rect.height() / ratio).toAlignedRect().adjusted(-1, -1, 1,
                                                                                        1))
                    if update.done == update.total:
                        self.update()

    def divider_x(self) -> float:
        return self.divider * self.width()

    # --- painting ----------------------------------------------------------------------------
    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        painter = QPainter(self)
        painter.fillRect(event.rect(), QColor(40, 40, 40))
        ratio = self.devicePixelRatioF()
        target = QRectF(0, 0, self.width(), self.height())
        if not self.layers and self.placeholder:
            painter.setPen(QColor(200, 200, 200))
            painter.drawText(target, Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                             self.placeholder)
        if any(layer.has_alpha for layer in self.layers):
            painter.fillRect(target, checkerboard())
        if self.wipe and len(self.layers) == 2:
            split = self.divider_x()
            for layer, clip in ((self.layers[0], QRectF(0, 0, split, self.height())),
                                (self.layers[1], QRectF(split, 0, self.width() - split,
                                                        self.height()))):
                if layer.image is not None:
                    painter.save()
                    painter.setClipRect(clip)
                    layer.image.setDevicePixelRatio(ratio)
                    painter.drawImage(target.topLeft(), layer.image)
                    painter.restore()
            painter.setPen(QPen(QColor(255, 255, 255, 220), 2))
            painter.drawLine(QPointF(split, 0), QPointF(split, self.height()))
            self._draw_handle(painter, split)
            self._draw_label(painter, self.layers[0], Qt.AlignmentFlag.AlignLeft)
            self._draw_label(painter, self.layers[1], Qt.AlignmentFlag.AlignRight)
        elif self.layers and self.layers[0].image is not None:
            self.layers[0].image.setDevicePixelRatio(ratio)
            painter.drawImage(target.topLeft(), self.layers[0].image)
            self._draw_label(painter, self.layers[0], Qt.AlignmentFlag.AlignLeft)
        if self.selection is not None:
            painter.setPen(QPen(QColor(255, 200, 0), 1.5, Qt.PenStyle.DashLine))
            r = self.selection
            painter.drawRect(QRectF(r.x() / ratio, r.y() / ratio, r.width() / ratio,
                                    r.height() / ratio))
        self._draw_progress(painter)
        painter.end()

    def _draw_label(self, painter: QPainter, layer: Layer, side: Qt.AlignmentFlag) -> None:
        font = QFont(self.font())
        font.setBold(True)
        painter.setFont(font)
        metrics = painter.fontMetrics()
        text = layer.label
        width = metrics.horizontalAdvance(text) + 14
        x = 8 if side == Qt.AlignmentFlag.AlignLeft else self.width() - width - 8
        box = QRectF(x, 8, width, metrics.height() + 6)
        painter.fillRect(box, QColor(0, 0, 0, 150))
        painter.setPen(QColor(255, 255, 255))
        painter.drawText(box, Qt.AlignmentFlag.AlignCenter, text)

    def _draw_handle(self, painter: QPainter, x: float) -> None:
        y = self.height() / 2
        painter.setBrush(QColor(255, 255, 255, 230))
        painter.setPen(QPen(QColor(0, 0, 0, 120), 1))
        painter.drawEllipse(QPointF(x, y), 9, 9)

    def _draw_progress(self, painter: QPainter) -> None:
        """A thin line along the bottom while tiles are still being refined."""
        layers = [layer for layer in self.layers if layer.total]
        if not layers or not any(layer.refining for layer in layers):
            return
        done = sum(layer.done for layer in layers)
        total = sum(layer.total for layer in layers)
        painter.fillRect(QRectF(0, self.height() - 3, self.width(), 3), QColor(0, 0, 0, 90))
        painter.fillRect(QRectF(0, self.height() - 3, self.width() * done / total, 3),
                         QColor(80, 160, 255, 220))

    # --- input -------------------------------------------------------------------------------
    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802
        delta = event.angleDelta().y() or event.angleDelta().x()
        if delta == 0:
            pixel = event.pixelDelta().y()  # touchpads without angle deltas
            delta = pixel * 4
        if delta:
            self.zoomRequested.emit(WHEEL_STEP ** delta, self.to_device(event.position()))
        event.accept()

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.NativeGesture:  # touchpad pinch (macOS, Wayland)
            gesture: QNativeGestureEvent = event
            if gesture.gestureType() == Qt.NativeGestureType.ZoomNativeGesture:
                self.zoomRequested.emit(1.0 + gesture.value(), self.to_device(gesture.position()))
                return True
        if event.type() == QEvent.Type.Gesture:  # touchscreen pinch
            pinch = event.gesture(Qt.GestureType.PinchGesture)
            if pinch is not None:
                centre = self.mapFromGlobal(pinch.centerPoint().toPoint())
                self.zoomRequested.emit(pinch.scaleFactor(), self.to_device(QPointF(centre)))
                return True
        return super().event(event)

    def _near_divider(self, x: float) -> bool:
        return self.wipe and abs(x - self.divider_x()) <= 10

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if event.button() != Qt.MouseButton.LeftButton:
            return
        position = event.position()
        if self._near_divider(position.x()):
            self._dragging_divider = True
        elif event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            self._band_origin = position.toPoint()
            if self._band is None:
                self._band = QRubberBand(QRubberBand.Shape.Rectangle, self)
            self._band.setGeometry(QRect(self._band_origin, QSize()))
            self._band.show()
        else:
            self._drag_start = position
            self.setCursor(Qt.CursorShape.ClosedHandCursor)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        position = event.position()
        self.cursorMoved.emit(self.to_device(position))
        if self._dragging_divider:
            self.divider = min(1.0, max(0.0, position.x() / max(1, self.width())))
            self.update()
        elif self._band is not None and self._band.isVisible():
            self._band.setGeometry(QRect(self._band_origin, position.toPoint()).normalized())
        elif self._drag_start is not None:
            delta = self.to_device(position - self._drag_start)
            self._drag_start = position
            self.panRequested.emit(delta.x(), delta.y())
        else:
            self.setCursor(Qt.CursorShape.SplitHCursor if self._near_divider(position.x())
                           else Qt.CursorShape.ArrowCursor)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self._band is not None and self._band.isVisible():
            self._band.hide()
            rect = QRectF(self._band.geometry())
            if rect.width() >= 3 and rect.height() >= 3:
                ratio = self.devicePixelRatioF()
                self.regionSelected.emit(QRectF(rect.x() * ratio, rect.y() * ratio,
                                                rect.width() * ratio, rect.height() * ratio))
        self._dragging_divider = False
        self._drag_start = None
        self.setCursor(Qt.CursorShape.ArrowCursor)

    def leaveEvent(self, event: QEvent) -> None:  # noqa: N802
        self.cursorMoved.emit(QPointF(-1, -1))
        super().leaveEvent(event)

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802
        super().resizeEvent(event)
        self.resized.emit()
