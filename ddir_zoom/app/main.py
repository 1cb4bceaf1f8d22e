"""Starting the application."""

from __future__ import annotations

import sys

from PySide6.QtWidgets import QApplication

from ddir_zoom.app.settings import Settings
from ddir_zoom.app.theme import apply_theme
from ddir_zoom.app.window import MainWindow, app_icon
from ddir_zoom.resources import sample_photo


def run_viewer(image: str | None = None) -> int:
    """Open the viewer on `image` (the bundled sample when None) and run until it closes."""
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("ddir-zoom")
    app.setOrganizationName("ddir-zoom")
    app.setWindowIcon(app_icon())
    settings = Settings()
    apply_theme(app, settings.theme)
    window = MainWindow(settings)
    window.show()
    window.open_path(image or sample_photo())
    return app.exec()
