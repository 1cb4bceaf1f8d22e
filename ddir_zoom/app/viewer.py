"""The viewer: panes laid out for one method, two or three side by side, or an A/B wipe, all
locked to one zoom and one image point at their centres.

It owns the view state (scale, centre in image pixels), turns pane gestures into changes of it,
and renders through the engine's progressive renderer, one channel per method shown. Changes
are coalesced: however fast they come (a slider dragged, a wheel spun), the next pass of the
event loop renders only the latest state, so nothing queues up.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtWidgets import QHBoxLayout, QWidget

from ddir_zoom.app.bridge import RenderBridge
from ddir_zoom.app.navigator import Navigator
from ddir_zoom.app.pane import Layer, ZoomPane
from ddir_zoom.engine import Engine, View
from ddir_zoom.engine.progressive import TileUpdate
from ddir_zoom.engine.view import MAX_SCALE, MIN_SCALE

MODES = {"single": 1, "side2": 2, "side3": 3, "wipe": 2}
MODE_NAMES = {"single": "Single view", "side2": "Side by side (2)",
              "side3": "Side by side (3)", "wipe": "A/B wipe"}


def display_name(method: str) -> str:
    return "Bicubic" if method == "bicubic" else method


class Viewer(QWidget):
    """Panes showing the open photo; see the module doc.

    viewChanged: the scale or centre changed. progressChanged(done, total): refined tiles over
    all panes. cursorMoved(y, x): image point under the mouse (NaN outside). selectionChanged:
    the selected region (image pixels) changed. errorRaised(message): rendering failed or the
    engine has something to say.
    """

    viewChanged = Signal()  # noqa: N815
    progressChanged = Signal(int, int)  # noqa: N815
    cursorMoved = Signal(float, float)  # noqa: N815
    selectionChanged = Signal()  # noqa: N815
    errorRaised = Signal(str)  # noqa: N815
    methodsChanged = Signal()  # noqa: N815
    stepRequested = Signal(int)  # noqa: N815 - arrow keys with nothing to pan: next (+1) / previous

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        self.panes = [ZoomPane(self) for _ in range(3)]
        for pane in self.panes:
            layout.addWidget(pane)
            pane.zoomRequested.connect(lambda f, p, pane=pane: self._zoom_at(pane, f, p))
            pane.panRequested.connect(self.pan)
            pane.cursorMoved.connect(lambda p, pane=pane: self._cursor(pane, p))
            pane.regionSelected.connect(lambda r, pane=pane: self._select(pane, r))
            pane.resized.connect(self._resized)
        self.mode = "single"
        self.methods = ["bicubic", "bicubic", "bicubic"]
        self.engine: Engine | None = None
        self.bridge: RenderBridge | None = None
        self.scale = 1.0
        self.center = (0.0, 0.0)
        self.selection: tuple[float, float, float, float] | None = None  # (y, x, h, w)
        self.layers: dict[int, Layer] = {}
        self.fit_mode: str | None = None  # "fit", "width" or "fill" while kept on resize
        self.flashing = False  # every pane shows the original (bicubic) while a key is held
        self.placeholder = "No photo open: Open (Ctrl+O), paste (Ctrl+V) or drop one here"
        self._last_cursor: tuple[ZoomPane, QPointF] | None = None
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(0)
        self._timer.timeout.connect(self.render)
        self.navigator = Navigator(self)
        self.navigator.centerRequested.connect(self.center_on)
        self._apply_mode()
        self.set_placeholder(self.placeholder)

    # --- state -------------------------------------------------------------------------------
    def set_engine(self, engine: Engine, methods: list[str] | None = None,
                   keep_view: bool = False) -> None:
        """Show a newly opened photo, fitted; with keep_view, the same part of the picture at
        the same size on screen as the photo before (which showed the same scene)."""
        before = (self.engine.size, self.scale, self.center, self.fit_mode) \
            if keep_view and self.engine is not None else None
        if self.bridge is not None:
            self.bridge.close()
            self.bridge.deleteLater()
        self.engine = engine
        self.bridge = RenderBridge(engine, self)
        self.bridge.tileReady.connect(self._tile)
        self.bridge.failed.connect(lambda generation, message: self.errorRaised.emit(message))
        self.bridge.notified.connect(self.errorRaised)
        if methods is not None:
            self.methods = [m if m in engine.methods else "bicubic" for m in methods]
        self.selection = None
        self.layers = {}
        self.navigator.set_photo(engine.source.levels, engine.size)
        if before is None:
            self.fit()
            return
        (_, old_w), scale, (cy, cx), fit_mode = before
        k = engine.size[1] / old_w  # new photo pixels per old one
        self.center = (cy * k, cx * k)
        self.scale = min(MAX_SCALE, max(MIN_SCALE, scale / k))
        if fit_mode is not None:
            self.fit(fit_mode)
        else:
            self._changed()

    def set_placeholder(self, text: str) -> None:
        """What the panes say while they have no photo to show (nothing open, loading)."""
        self.placeholder = text
        for pane in self.panes:
            pane.placeholder = text
            pane.update()

    def center_on(self, y: float, x: float) -> None:
        self.center = (y, x)
        self._changed()

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._place_navigator()

    def _place_navigator(self) -> None:
        pane = self.active_panes()[0]
        corner = pane.geometry().bottomRight()
        self.navigator.move(corner.x() - self.navigator.width() - 10,
                            corner.y() - self.navigator.height() - 14)
        self.navigator.raise_()

    def close_engine(self) -> None:
        if self.bridge is not None:
            self.bridge.close()
            self.bridge = None

    def active_panes(self) -> list[ZoomPane]:
        return self.panes[:1] if self.mode == "wipe" else self.panes[:MODES[self.mode]]

    def view_for(self, pane: ZoomPane) -> View:
        return View.centred(self.scale, self.center, pane.device_size())

    def fit_scale(self, mode: str = "fit") -> float:
        """The scale that shows the whole photo ("fit"), its width ("width") or fills the pane
        ("fill")."""
        if self.engine is None:
            return 1.0
        h, w = self.engine.size
        ph, pw = self.active_panes()[0].device_size()
        scale = {"fit": min(ph / h, pw / w), "width": pw / w, "fill": max(ph / h, pw / w)}[mode]
        return min(MAX_SCALE, max(MIN_SCALE, scale))

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown layout {mode!r}")
        self.mode = mode
        self._apply_mode()
        self.schedule()

    def _apply_mode(self) -> None:
        for pane in self.panes:
            pane.setVisible(pane in self.active_panes())
        if self.bridge is not None:
            for channel in range(MODES[self.mode], 3):
                self.bridge.cancel(channel)

    def set_method(self, slot: int, method: str) -> None:
        self.methods[slot] = method
        self.methodsChanged.emit()
        self.schedule()

    def flip(self) -> None:
        """Swap methods A and B (the two sides of the wipe, the first two panes)."""
        self.methods[0], self.methods[1] = self.methods[1], self.methods[0]
        self.methodsChanged.emit()
        self.schedule()

    # --- view changes ------------------------------------------------------------------------
    def zoom_to(self, scale: float, anchor: tuple[ZoomPane, QPointF] | None = None) -> None:
        """Set the scale, keeping the image point under `anchor` (pane, device position) still
        (default: the centre)."""
        scale = min(MAX_SCALE, max(MIN_SCALE, float(scale)))
        if anchor is not None and self.engine is not None:
            pane, point = anchor
            view = self.view_for(pane)
            y, x = view.screen_to_image(point.x(), point.y())
            h, w = pane.device_size()
            # The new centre puts image point (y, x) back under the same screen position.
            self.center = (y - (point.y() - h / 2) / scale, x - (point.x() - w / 2) / scale)
        self.scale = scale
        self.fit_mode = None
        self._changed()

    def _changed(self) -> None:
        self.constrain()
        self.schedule()
        self.viewChanged.emit()
        if self._last_cursor is not None:  # the image point under a still mouse has moved
            self._cursor(*self._last_cursor)

    def constrain(self) -> None:
        """Keep the photo in view: on each axis, centred when it is smaller than the pane,
        otherwise the centre limited so that the photo's edge never comes inside the pane."""
        if self.engine is None:
            return
        ph, pw = self.active_panes()[0].device_size()

        def axis(centre: float, size: int, view: int) -> float:
            if size * self.scale <= view:
                return size / 2
            half = view / 2 / self.scale
            return min(max(centre, half), size - half)

        h, w = self.engine.size
        self.center = (axis(self.center[0], h, ph), axis(self.center[1], w, pw))

    def can_pan(self) -> tuple[bool, bool]:
        """(vertically, horizontally): whether the photo is larger than the pane."""
        if self.engine is None:
            return False, False
        ph, pw = self.active_panes()[0].device_size()
        h, w = self.engine.size
        return h * self.scale > ph + 0.5, w * self.scale > pw + 0.5

    def zoom_by(self, factor: float) -> None:
        self.zoom_to(self.scale * factor)

    def _zoom_at(self, pane: ZoomPane, factor: float, point: QPointF) -> None:
        self.zoom_to(self.scale * factor, (pane, point))

    def pan(self, du: float, dv: float) -> None:
        """Move the picture by (du, dv) device pixels."""
        self.center = (self.center[0] - dv / self.scale, self.center[1] - du / self.scale)
        self._changed()

    def fit(self, mode: str = "fit") -> None:
        """The whole photo in view ("fit"), its width ("width") or the pane filled ("fill");
        kept while the window is resized, until the user zooms."""
        if self.engine is None:
            return
        self.center = (self.engine.size[0] / 2, self.engine.size[1] / 2)
        self.zoom_to(self.fit_scale(mode))
        self.fit_mode = mode

    def zoom_to_selection(self) -> None:
        """The selected region fills the pane."""
        if self.engine is None or self.selection is None:
            return
        y, x, h, w = self.selection
        ph, pw = self.active_panes()[0].device_size()
        self.center = (y + h / 2, x + w / 2)
        self.zoom_to(min(ph / h, pw / w))

    def _resized(self) -> None:
        if self.fit_mode is not None:
            self.fit(self.fit_mode)
        else:
            self._changed()

    def set_flashing(self, on: bool) -> None:
        """Show the original (bicubic) in every pane while a key is held."""
        if on != self.flashing:
            self.flashing = on
            self.schedule()

    def schedule(self) -> None:
        """Render the latest state on the next pass of the event loop (coalescing)."""
        self._timer.start()

    # --- rendering ---------------------------------------------------------------------------
    def render(self) -> None:
        if self.bridge is None:
            return
        panes = self.active_panes()
        channel = 0
        self.layers = {}
        for pane in panes:
            view = self.view_for(pane)
            layers = []
            for _ in range(2 if self.mode == "wipe" else 1):
                method = "bicubic" if self.flashing else self.methods[channel]
                try:
                    frame = self.bridge.request(view, method, channel)
                except KeyError:
                    method = self.methods[channel] = "bicubic"
                    frame = self.bridge.request(view, method, channel)
                label = display_name(method) + (" (original, held)" if self.flashing else "")
                layer = Layer(channel, label)
                layer.set_frame(frame, label)
                self.layers[channel] = layer
                layers.append(layer)
                channel += 1
            alpha = self._alpha(view)
            for layer in layers:
                layer.set_alpha(alpha)
            pane.selection = self._selection_on(view)
            pane.set_layers(layers, self.mode == "wipe")
        self.navigator.set_visible_region(self.visible_region())
        self._place_navigator()
        self._progress()

    def _alpha(self, view: View):
        """The photo's transparency over `view` as uint8 (opaque outside the photo), or None
        for a photo without any."""
        if self.engine is None or self.engine.photo.alpha is None:
            return None
        y0, x0, y1, x1 = self.engine.source.photo_rect(view)
        out = np.full(view.size, 255, np.uint8)
        if y1 > y0 and x1 > x0:
            alpha = self.engine.render_alpha(view.scale, (view.origin[0] + y0,
                                                          view.origin[1] + x0), (y1 - y0, x1 - x0))
            out[y0:y1, x0:x1] = np.round(alpha * 255).astype(np.uint8)
        return out

    def _tile(self, update: TileUpdate) -> None:
        for pane in self.active_panes():
            pane.apply(update)
        self._progress()

    def _progress(self) -> None:
        layers = self.layers.values()
        self.progressChanged.emit(sum(layer.done for layer in layers),
                                  sum(layer.total for layer in layers))

    # --- cursor and selection ----------------------------------------------------------------
    def _cursor(self, pane: ZoomPane, point: QPointF) -> None:
        self._last_cursor = None if point.x() < 0 else (pane, point)
        if point.x() < 0 or self.engine is None:
            self.cursorMoved.emit(float("nan"), float("nan"))
            return
        y, x = self.view_for(pane).screen_to_image(point.x(), point.y())
        inside = 0 <= y < self.engine.size[0] and 0 <= x < self.engine.size[1]
        self.cursorMoved.emit(y if inside else float("nan"), x if inside else float("nan"))

    def _select(self, pane: ZoomPane, rect: QRectF) -> None:
        if self.engine is None:
            return
        view = self.view_for(pane)
        y0, x0 = view.screen_to_image(rect.left(), rect.top())
        y1, x1 = view.screen_to_image(rect.right(), rect.bottom())
        h, w = self.engine.size
        # Whole photo pixels: a 75 x 50 selection exports as exactly 300 x 200 at x4.
        y0, x0 = max(0, round(y0)), max(0, round(x0))
        y1, x1 = min(h, round(y1)), min(w, round(x1))
        self.selection = ((float(y0), float(x0), float(y1 - y0), float(x1 - x0))
                          if y1 > y0 and x1 > x0 else None)
        self.schedule()
        self.selectionChanged.emit()

    def clear_selection(self) -> None:
        self.selection = None
        self.schedule()
        self.selectionChanged.emit()

    def _selection_on(self, view: View) -> QRectF | None:
        if self.selection is None:
            return None
        y, x, h, w = self.selection
        u0, v0 = view.image_to_screen(y, x)
        u1, v1 = view.image_to_screen(y + h, x + w)
        return QRectF(u0, v0, u1 - u0, v1 - v0)

    def visible_region(self) -> tuple[float, float, float, float] | None:
        """The image rectangle (y, x, h, w) the first pane shows, clipped to the photo."""
        if self.engine is None:
            return None
        view = self.view_for(self.active_panes()[0])
        y0, x0 = view.screen_to_image(0, 0)
        y1, x1 = view.screen_to_image(view.size[1], view.size[0])
        h, w = self.engine.size
        y0, x0, y1, x1 = max(0.0, y0), max(0.0, x0), min(float(h), y1), min(float(w), x1)
        return (y0, x0, y1 - y0, x1 - x0) if y1 > y0 and x1 > x0 else None

    def keyPressEvent(self, event) -> None:  # noqa: N802
        """Arrows pan; left and right go to the previous and next photo when there is nothing
        to pan sideways (the photo fits its width). Space held shows the original."""
        step = 0.25 * min(self.active_panes()[0].device_size())
        moves = {Qt.Key.Key_Left: (step, 0), Qt.Key.Key_Right: (-step, 0),
                 Qt.Key.Key_Up: (0, step), Qt.Key.Key_Down: (0, -step)}
        key = event.key()
        if key == Qt.Key.Key_Space:
            if not event.isAutoRepeat():
                self.set_flashing(True)
        elif key in (Qt.Key.Key_Left, Qt.Key.Key_Right) and not self.can_pan()[1]:
            self.stepRequested.emit(1 if key == Qt.Key.Key_Right else -1)
        elif key in moves:
            self.pan(*moves[key])
        else:
            super().keyPressEvent(event)

    def keyReleaseEvent(self, event) -> None:  # noqa: N802
        """Space held: the original (bicubic) in every pane, for a flicker comparison."""
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self.set_flashing(False)
        else:
            super().keyReleaseEvent(event)
