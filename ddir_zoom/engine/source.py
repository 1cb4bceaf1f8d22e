"""The open photo as the engine uses it: float pixels to render from, and a pyramid of 8-bit
levels for instant previews."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ddir_zoom.engine.view import View, render_size
from ddir_zoom.imaging.io import Photo, to_uint8

BACKGROUND = (40, 40, 40)
"""Colour of viewport pixels outside the photo."""


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
    +0.5); pixels outside `rect` are BACKGROUND.
    """
    h, w = view.size
    y0, x0, y1, x1 = rect
    out = torch.empty((h, w, 3), dtype=torch.uint8)
    if (y0, x0, y1, x1) != (0, 0, h, w):
        out[:] = torch.tensor(BACKGROUND, dtype=torch.uint8)
    if y0 >= y1 or x0 >= x1:
        return out.numpy()
    ys = start[0] + (view.origin[0] + np.arange(y0, y1) + 0.5) * step[0]
    xs = start[1] + (view.origin[1] + np.arange(x0, x1) + 0.5) * step[1]
    # Only the part of the image under the view is converted and sampled.
    top = min(image.shape[0] - 1, max(0, int(ys[0]) - 1))
    bottom = max(top + 1, min(image.shape[0], int(np.ceil(ys[-1])) + 1))
    left = min(image.shape[1] - 1, max(0, int(xs[0]) - 1))
    right = max(left + 1, min(image.shape[1], int(np.ceil(xs[-1])) + 1))
    # A channels-last view of the crop: grid_sample's fastest input on CPUs.
    crop = torch.from_numpy(image[top:bottom, left:right]).float()[None].permute(0, 3, 1, 2)
    grid = torch.empty((1, y1 - y0, x1 - x0, 2))
    grid[..., 0] = torch.from_numpy(2 * (xs - left) / (right - left) - 1)
    grid[..., 1] = torch.from_numpy(2 * (ys - top) / (bottom - top) - 1)[:, None]
    sampled = F.grid_sample(crop, grid, mode="bilinear", padding_mode="border",
                            align_corners=False)
    # Bilinear weights are convex, so values stay in [0, 255]: adding 0.5 and truncating rounds.
    # Converting planar and interleaving uint8 planes is twice as fast as one strided copy.
    planes = sampled[0].add_(0.5).to(torch.uint8).numpy()
    pixels = out.numpy()
    region = pixels[y0:y1, x0:x1]
    for channel in range(3):
        region[..., channel] = planes[channel]
    return pixels
