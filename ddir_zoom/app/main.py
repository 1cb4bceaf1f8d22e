"""Starting the application."""

from __future__ import annotations

import sys

from PySide6.QtWidgets import QApplication

from ddir_zoom.app.window import MainWindow
from ddir_zoom.resources import sample_photo


def run_viewer(image: str | None = None) -> int:
    """Open the viewer on `image` (the bundled sample when None) and run until it closes."""
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("ddir-zoom")
    window = MainWindow()
    window.show()
    window.open_photo(image or sample_photo())
    return app.exec()
