"""The engine's progressive renderer, seen from Qt: its worker-thread callbacks become signals
delivered on the GUI thread."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from ddir_zoom.engine import Engine, View
from ddir_zoom.engine.progressive import Frame, ProgressiveRenderer


class RenderBridge(QObject):
    """Owns a ProgressiveRenderer for one open photo.

    tileReady(TileUpdate), finished(generation) and failed(generation, message) arrive on the
    GUI thread (queued: they are emitted from the render worker).
    """

    tileReady = Signal(object)  # noqa: N815 (Qt's naming)
    finished = Signal(int)
    failed = Signal(int, str)
    notified = Signal(str)

    def __init__(self, engine: Engine, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.engine = engine
        engine.notify = self.notified.emit
        self.renderer = ProgressiveRenderer(engine, self.tileReady.emit, self.finished.emit,
                                            self.failed.emit)

    def request(self, view: View, method: str, channel: int) -> Frame:
        return self.renderer.request(view, method, channel)

    def cancel(self, channel: int | None = None) -> None:
        self.renderer.cancel(channel)

    def close(self) -> None:
        self.renderer.close()
