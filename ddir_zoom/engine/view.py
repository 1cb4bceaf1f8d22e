"""View geometry: what part of the photo a viewport shows, at what scale.

A view at scale s (screen pixels per image pixel) is a window into the virtual full render of the
photo at that scale, whose pixel j shows the image point (j + 0.5) / s (image pixel units, pixel
centres at i + 0.5). The window's top-left screen pixel is render pixel `origin`, an integer, so
screen pixel (u, v) shows the image point

    ((origin_y + v + 0.5) / s, (origin_x + u + 0.5) / s)
    = ((v + 0.5 - H / 2) / s + cy, (u + 0.5 - W / 2) / s + cx)

with (cy, cx) = ((origin_y + H / 2) / s, (origin_x + W / 2) / s) the image point at the viewport's
centre, and each screen pixel covers a cell of 1 / s image pixels. Keeping the origin integral
(a view asked for at any centre snaps by at most half a screen pixel) is what makes every screen
pixel exactly a pixel of the full render, so refined tiles are cached by scale and tile index and
reused while panning.
"""

from __future__ import annotations

from dataclasses import dataclass

from ddir_zoom.imaging.resample import output_size

MIN_SCALE = 0.05
MAX_SCALE = 32.0
TILE = 128
"""Screen tiles are TILE x TILE pixels of the virtual full render."""


@dataclass(frozen=True)
class View:
    scale: float
    origin: tuple[int, int]  # (y, x): render pixel at the viewport's top-left
    size: tuple[int, int]  # (height, width) in screen pixels

    def __post_init__(self) -> None:
        if not MIN_SCALE <= self.scale <= MAX_SCALE:
            raise ValueError(f"scale {self.scale} outside [{MIN_SCALE}, {MAX_SCALE}]")
        if self.size[0] <= 0 or self.size[1] <= 0:
            raise ValueError(f"viewport size must be positive, got {self.size}")

    @classmethod
    def centred(cls, scale: float, center: tuple[float, float], size: tuple[int, int]) -> View:
        """The view of `size` at `scale` whose centre shows image point `center` (y, x), snapped
        to the render grid (by at most half a screen pixel)."""
        h, w = size
        origin = (round(center[0] * scale - h / 2), round(center[1] * scale - w / 2))
        return cls(float(scale), origin, (int(h), int(w)))

    @classmethod
    def fit(cls, image_size: tuple[int, int], size: tuple[int, int],
            max_scale: float = 1.0) -> View:
        """The whole image fitted in the viewport (never enlarged beyond `max_scale`)."""
        scale = min(size[0] / image_size[0], size[1] / image_size[1], max_scale)
        scale = min(MAX_SCALE, max(MIN_SCALE, scale))
        return cls.centred(scale, (image_size[0] / 2, image_size[1] / 2), size)

    @property
    def center(self) -> tuple[float, float]:
        return ((self.origin[0] + self.size[0] / 2) / self.scale,
                (self.origin[1] + self.size[1] / 2) / self.scale)

    def screen_to_image(self, u: float, v: float) -> tuple[float, float]:
        """Image point (y, x) at screen position (u, v) = (x, y) in pixels from the top-left
        corner of the viewport (pixel centres at +0.5)."""
        return ((self.origin[0] + v) / self.scale, (self.origin[1] + u) / self.scale)

    def image_to_screen(self, y: float, x: float) -> tuple[float, float]:
        """Screen position (u, v) of image point (y, x); inverse of screen_to_image."""
        return (x * self.scale - self.origin[1], y * self.scale - self.origin[0])

    def zoomed(self, scale: float, anchor: tuple[float, float] | None = None) -> View:
        """This view at another scale, keeping the image point under screen position `anchor`
        (u, v) where it is (default: the centre)."""
        scale = min(MAX_SCALE, max(MIN_SCALE, float(scale)))
        if anchor is None:
            return View.centred(scale, self.center, self.size)
        u, v = anchor
        y, x = self.screen_to_image(u, v)
        origin = (round(y * scale - v), round(x * scale - u))
        return View(scale, origin, self.size)


def render_size(image_size: tuple[int, int], scale: float) -> tuple[int, int]:
    """Size of the virtual full render: every render pixel whose centre lies in the image
    (`imaging.output_size`)."""
    return output_size(image_size, scale)


def visible_tiles(view: View, image_size: tuple[int, int]) -> list[tuple[int, int]]:
    """(ty, tx) of the TILE-sized render tiles that the view shows and that hold image pixels,
    nearest the viewport centre first."""
    rh, rw = render_size(image_size, view.scale)
    y0, x0 = max(0, view.origin[0]), max(0, view.origin[1])
    y1 = min(rh, view.origin[0] + view.size[0])
    x1 = min(rw, view.origin[1] + view.size[1])
    if y0 >= y1 or x0 >= x1:
        return []
    cy = view.origin[0] + view.size[0] / 2
    cx = view.origin[1] + view.size[1] / 2
    tiles = [(ty, tx) for ty in range(y0 // TILE, (y1 - 1) // TILE + 1)
             for tx in range(x0 // TILE, (x1 - 1) // TILE + 1)]
    return sorted(tiles, key=lambda t: ((t[0] + 0.5) * TILE - cy) ** 2
                  + ((t[1] + 0.5) * TILE - cx) ** 2)


def tile_rect(tile: tuple[int, int], image_size: tuple[int, int], scale: float
              ) -> tuple[int, int, int, int]:
    """(y, x, h, w) in render pixels of a tile, clipped to the render's size."""
    rh, rw = render_size(image_size, scale)
    y, x = tile[0] * TILE, tile[1] * TILE
    return y, x, min(TILE, rh - y), min(TILE, rw - x)
