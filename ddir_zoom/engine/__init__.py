"""The rendering engine (no Qt): view geometry, feature tiles, methods, progressive rendering and
export, shared by the viewer, the command line and the benchmarks."""

from ddir_zoom.engine.engine import DEFAULT_FEATURE_CACHE_BYTES, Engine
from ddir_zoom.engine.methods import Cancelled
from ddir_zoom.engine.view import TILE, View, render_size, visible_tiles

__all__ = ["DEFAULT_FEATURE_CACHE_BYTES", "TILE", "Cancelled", "Engine", "View", "render_size",
           "visible_tiles"]
