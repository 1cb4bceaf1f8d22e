"""The open photo as the engine uses it: float pixels to render from, and a pyramid of 8-bit
levels for instant previews."""

from __future__ import annotations

import cv2
import numpy as np

from ddir_zoom.engine.view import View, render_size
from ddir_zoom.imaging.io import Photo, to_uint8

BACKGROUND = (40, 40, 40)
"""Colour of viewport pixels outside the photo."""
PREVIEW_TOLERANCE = 9
"""Levels of 255 a preview sample may differ from exact bilinear: positions rounded to 1/32
pixel move a sample by at most 1/64 pixel along each axis, 255 / 64 levels each, and 1 more
for rounding."""

# The warp runs on the calling thread only: a frame is small, and the render worker's threads
# may be busy (`ddir_zoom.threads`).
cv2.setNumThreads(1)


class PhotoSource:
    """Pixels of an open photo.

    rgb: float32 (h, w, 3) in [0, 1]; alpha: float32 (h, w) or None.
    levels: uint8 (h / 2^k, w / 2^k, 3) for k = 0, 1, ... down to about 64 pixels, each the
    2x2 average of the one above.
    """

    def __init__(self, photo: Photo) -> None:
        self.photo = photo
        self.rgb = photo.rgb
        self.alpha = photo.alpha
        self.size = (photo.height, photo.width)
        self.levels = [photo.rgb8 if photo.rgb8 is not None else to_uint8(photo.rgb)]
        while min(self.levels[-1].shape[:2]) > 128:
            top = self.levels[-1]
            h, w = (top.shape[0] // 2) * 2, (top.shape[1] // 2) * 2
            total = top[0:h:2, 0:w:2].astype(np.uint16)
            total += top[1:h:2, 0:w:2]
            total += top[0:h:2, 1:w:2]
            total += top[1:h:2, 1:w:2]
            total += 2
            total //= 4
            self.levels.append(total.astype(np.uint8))

    def photo_rect(self, view: View) -> tuple[int, int, int, int]:
        """(y0, x0, y1, x1): the screen pixels of `view` that show the photo (maybe empty)."""
        rh, rw = render_size(self.size, view.scale)
        oy, ox = view.origin
        return (min(view.size[0], max(0, -oy)), min(view.size[1], max(0, -ox)),
                max(0, min(view.size[0], rh - oy)), max(0, min(view.size[1], rw - ox)))

    def preview(self, view: View) -> np.ndarray:
        """A quick rendering of `view`, uint8 (H, W, 3): bilinear from the pyramid level nearest
        above the view's scale, with the view's exact geometry, so refined tiles land on it
        without a jump. Pixels outside the photo (`photo_rect`) are BACKGROUND."""
        level = 0
        while level + 1 < len(self.levels) and view.scale <= 0.5 ** (level + 1):
            level += 1
        image = self.levels[level]
        fy, fx = image.shape[0] / self.size[0], image.shape[1] / self.size[1]
        return sample_view(image, view, self.photo_rect(view), (fy / view.scale, fx / view.scale),
                           (0.0, 0.0))


def sample_view(image: np.ndarray, view: View, rect: tuple[int, int, int, int],
                step: tuple[float, float], start: tuple[float, float]) -> np.ndarray:
    """Bilinear samples of uint8 `image` for the screen pixels of `view`, uint8 (H, W, 3).

    Screen pixel (u, v) inside `rect` (y0, x0, y1, x1) samples the image position
    (start + (origin + v + 0.5) * step) along each axis, in image pixel units (pixel centres at
    +0.5), past the image's edge its border pixels; pixels outside `rect` are BACKGROUND.

    OpenCV's affine warp does it with SIMD fixed-point arithmetic: positions to 1/32 pixel, so
    a sample is within PREVIEW_TOLERANCE levels of exact bilinear (tested), 3x faster than
    torch's grid_sample here, and a zoom drag makes one of these per frame.
    """
    h, w = view.size
    y0, x0, y1, x1 = rect
    out = np.empty((h, w, 3), np.uint8)
    if (y0, x0, y1, x1) != (0, 0, h, w):
        out[:] = BACKGROUND
    if y0 >= y1 or x0 >= x1:
        return out
    # Only the part of the image under the view is warped (OpenCV takes sides below 32767).
    top, bottom = _span(start[0], step[0], view.origin[0] + y0, view.origin[0] + y1,
                        image.shape[0])
    left, right = _span(start[1], step[1], view.origin[1] + x0, view.origin[1] + x1,
                        image.shape[1])
    # Destination pixel (i, j) of the warp reads source (a + i * s) in OpenCV's convention,
    # pixel centres at integers: ours shifted by -0.5.
    ay = start[0] + (view.origin[0] + y0 + 0.5) * step[0] - 0.5 - top
    ax = start[1] + (view.origin[1] + x0 + 0.5) * step[1] - 0.5 - left
    inverse = np.array([[step[1], 0.0, ax], [0.0, step[0], ay]])
    region = out[y0:y1, x0:x1]
    warped = cv2.warpAffine(image[top:bottom, left:right], inverse, (x1 - x0, y1 - y0), dst=region,
                            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                            borderMode=cv2.BORDER_REPLICATE)
    if not np.shares_memory(warped, region):  # OpenCV wrote a new array, not into ours
        region[:] = warped
    return out


def _span(start: float, step: float, first: int, stop: int, size: int) -> tuple[int, int]:
    """[low, high) image pixels that the samples of screen pixels [first, stop) read (positions
    start + (v + 0.5) * step, pixel centres at +0.5), one to spare each side, within the
    image."""
    low = min(size - 1, max(0, int(np.floor(start + (first + 0.5) * step)) - 1))
    high = max(low + 1, min(size, int(np.ceil(start + (stop - 0.5) * step)) + 1))
    return low, high
