"""The viewer: panes laid out for one method, two or three side by side, or an A/B wipe, all
locked to one zoom and one image point at their centres.

It owns the view state (scale, centre in image pixels), turns pane gestures into changes of it,
and renders through the engine's progressive renderer, one channel per method shown. Changes
are coalesced: however fast they come (a slider dragged, a wheel spun), the next pass of the
event loop renders only the latest state, so nothing queues up.
"""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtWidgets import QHBoxLayout, QWidget

from ddir_zoom.app.bridge import RenderBridge
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
            pane.resized.connect(self.schedule)
        self.mode = "single"
        self.methods = ["bicubic", "bicubic", "bicubic"]
        self.engine: Engine | None = None
        self.bridge: RenderBridge | None = None
        self.scale = 1.0
        self.center = (0.0, 0.0)
        self.selection: tuple[float, float, float, float] | None = None  # (y, x, h, w)
        self.layers: dict[int, Layer] = {}
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(0)
        self._timer.timeout.connect(self.render)
        self._apply_mode()

    # --- state -------------------------------------------------------------------------------
    def set_engine(self, engine: Engine, methods: list[str] | None = None) -> None:
        """Show a newly opened photo, fitted."""
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
        self.fit()

    def close_engine(self) -> None:
        if self.bridge is not None:
            self.bridge.close()
            self.bridge = None

    def active_panes(self) -> list[ZoomPane]:
        return self.panes[:1] if self.mode == "wipe" else self.panes[:MODES[self.mode]]

    def view_for(self, pane: ZoomPane) -> View:
        return View.centred(self.scale, self.center, pane.device_size())

    def fit_scale(self) -> float:
        if self.engine is None:
            return 1.0
        h, w = self.engine.size
        ph, pw = self.active_panes()[0].device_size()
        return min(MAX_SCALE, max(MIN_SCALE, min(ph / h, pw / w)))

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
        self.schedule()
        self.viewChanged.emit()

    def zoom_by(self, factor: float) -> None:
        self.zoom_to(self.scale * factor)

    def _zoom_at(self, pane: ZoomPane, factor: float, point: QPointF) -> None:
        self.zoom_to(self.scale * factor, (pane, point))

    def pan(self, du: float, dv: float) -> None:
        """Move the picture by (du, dv) device pixels."""
        self.center = (self.center[0] - dv / self.scale, self.center[1] - du / self.scale)
        self.schedule()
        self.viewChanged.emit()

    def fit(self) -> None:
        if self.engine is None:
            return
        self.center = (self.engine.size[0] / 2, self.engine.size[1] / 2)
        self.zoom_to(self.fit_scale())

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
                method = self.methods[channel]
                try:
                    frame = self.bridge.request(view, method, channel)
                except KeyError:
                    method = self.methods[channel] = "bicubic"
                    frame = self.bridge.request(view, method, channel)
                layer = Layer(channel, display_name(method))
                layer.set_frame(frame, display_name(method))
                self.layers[channel] = layer
                layers.append(layer)
                channel += 1
            pane.selection = self._selection_on(view)
            pane.set_layers(layers, self.mode == "wipe")
        self._progress()

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
        y0, x0 = max(0.0, y0), max(0.0, x0)
        y1, x1 = min(float(h), y1), min(float(w), x1)
        self.selection = (y0, x0, y1 - y0, x1 - x0) if y1 > y0 and x1 > x0 else None
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
        step = 0.25 * min(self.active_panes()[0].device_size())
        moves = {Qt.Key.Key_Left: (step, 0), Qt.Key.Key_Right: (-step, 0),
                 Qt.Key.Key_Up: (0, step), Qt.Key.Key_Down: (0, -step)}
        if event.key() in moves:
            self.pan(*moves[event.key()])
        else:
            super().keyPressEvent(event)
