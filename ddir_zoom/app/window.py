"""The main window. For now it shows one photo fitted to the window; the zoom viewer grows here."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QPixmap, QResizeEvent
from PySide6.QtWidgets import QLabel, QMainWindow
from superqt.utils import create_worker

from ddir_zoom.app.qimage import to_qimage
from ddir_zoom.imaging import ImageLoadError, Photo, load_photo


class PhotoLabel(QLabel):
    """A label that keeps its pixmap fitted to its size, aspect ratio kept."""

    def __init__(self) -> None:
        super().__init__()
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setMinimumSize(1, 1)
        self._pixmap: QPixmap | None = None

    def set_photo(self, pixmap: QPixmap) -> None:
        self._pixmap = pixmap
        self._refit()

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 (Qt's name)
        super().resizeEvent(event)
        self._refit()

    def _refit(self) -> None:
        if self._pixmap is not None:
            self.setPixmap(self._pixmap.scaled(self.size(), Qt.AspectRatioMode.KeepAspectRatio,
                                               Qt.TransformationMode.SmoothTransformation))


class MainWindow(QMainWindow):
    def __init__(self) -> None:
        super().__init__()
        self.setWindowTitle("ddir-zoom")
        self.resize(1000, 700)
        self.view = PhotoLabel()
        self.setCentralWidget(self.view)
        self.photo: Photo | None = None
        self.error: str | None = None

    def open_photo(self, path: str | Path) -> None:
        """Decode `path` off the GUI thread; show it, or the reason it cannot be shown."""
        self.statusBar().showMessage(f"Opening {path} ...")
        # Connected at creation: superqt re-raises errors of workers without an errored slot.
        create_worker(load_photo, Path(path), _start_thread=True,
                      _connect={"returned": self._show_photo, "errored": self._show_error})

    def _show_photo(self, photo: Photo) -> None:
        self.photo, self.error = photo, None
        self.view.set_photo(QPixmap.fromImage(to_qimage(photo.rgb)))
        self.setWindowTitle(f"{photo.source.name} - ddir-zoom")
        self.statusBar().showMessage(f"{photo.source.name}: {photo.width} x {photo.height}")

    def _show_error(self, exc: Exception) -> None:
        self.error = str(exc) if isinstance(exc, ImageLoadError) else f"Cannot open: {exc}"
        self.view.setText(self.error)
        self.view.setWordWrap(True)
        self.statusBar().showMessage(self.error)
