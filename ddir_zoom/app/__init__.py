"""The Qt application. Everything Qt lives in this package; nothing below it imports Qt."""

from ddir_zoom.app.main import run_viewer

__all__ = ["run_viewer"]
