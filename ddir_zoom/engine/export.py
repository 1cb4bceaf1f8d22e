"""Exporting a rectangle of the photo at any scale or exact size, streamed in tiles.

Memory stays bounded whatever the output size: PNG rows are compressed as each strip of tiles
completes; JPEG, TIFF and WebP are rendered into a pixel buffer mapped from a temporary file
beside the destination (the operating system pages it), which Pillow encodes without copying.
The file appears only when complete (`atomic_output`); a cancel or an error leaves nothing.

Geometry. At a scale s the export of image rectangle (y, x, h, w) is the render pixels whose
centres fall in it, [ceil(y s - 0.5), ceil((y + h) s - 0.5)) on each axis: the very pixels the
viewport shows at that scale, rendered tile by tile on the same grid, so they are identical. At an
exact output size (H, W) the scales are H / h and W / w and the output starts at y * H / h.
"""

from __future__ import annotations

import errno
import io
import math
import os
import shutil
import struct
import tempfile
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms

from ddir_zoom.engine.engine import Engine, as_scale
from ddir_zoom.engine.methods import Cancelled
from ddir_zoom.engine.view import TILE, tile_rect
from ddir_zoom.imaging.io import (
    ALPHA_FORMATS,
    ImageSaveError,
    atomic_output,
    check_destination,
    forget_temporary,
    format_for,
    save_options,
    tiff_exif,
    to_uint8,
    track_temporary,
)
from ddir_zoom.imaging.png_stream import PngStreamWriter

MAX_SIDE = {"JPEG": 65500, "WEBP": 16383, "PNG": 2**31 - 1, "TIFF": 2**31 - 1,
            "HEIF": 16384, "AVIF": 16384}


def export_geometry(
    rect: tuple[float, float, float, float],
    scale: float | None = None,
    size: tuple[int, int] | None = None,
) -> tuple[tuple[float, float], tuple[float, float], tuple[int, int]]:
    """(scale (sy, sx), offset (oy, ox) in output pixels, shape (H, W)) of an export of image
    rectangle `rect` (y, x, h, w) at `scale` or at exact `size` (H, W); see the module doc."""
    if (scale is None) == (size is None):
        raise ValueError("give exactly one of scale and size")
    y, x, h, w = rect
    if h <= 0 or w <= 0:
        raise ValueError(f"the region must not be empty, got {rect}")
    if size is not None:
        if size[0] <= 0 or size[1] <= 0:
            raise ValueError(f"the output size must be positive, got {size}")
        sy, sx = size[0] / h, size[1] / w
        return (sy, sx), (y * sy, x * sx), (int(size[0]), int(size[1]))
    if scale <= 0:
        raise ValueError(f"the scale must be positive, got {scale}")

    def span(start: float, length: float) -> tuple[int, int]:
        first = math.ceil(start * scale - 0.5 - 1e-9)
        last = math.ceil((start + length) * scale - 0.5 - 1e-9)
        return first, max(1, last - first)

    (oy, oh), (ox, ow) = span(y, h), span(x, w)
    return (float(scale), float(scale)), (oy, ox), (oh, ow)


def _tiles(engine: Engine, scale: tuple[float, float], offset: tuple[float, float],
           shape: tuple[int, int]):
    """Rendering tiles of the export, row by row: (output rect (y, x, h, w), render rect).

    With integral offsets at one scale the tiles are the render's global TILE grid (the
    viewport's tiles, cropped to the export); otherwise a TILE grid from the export's origin."""
    oy, ox = offset
    oh, ow = shape
    if scale[0] == scale[1] and float(oy).is_integer() and float(ox).is_integer():
        oy, ox = int(oy), int(ox)
        for ty in range(oy // TILE, (oy + oh - 1) // TILE + 1):
            row = []
            for tx in range(ox // TILE, (ox + ow - 1) // TILE + 1):
                ry, rx, rh, rw = tile_rect((ty, tx), engine.size, scale[0])
                top, left = max(ry, oy), max(rx, ox)
                bottom, right = min(ry + rh, oy + oh), min(rx + rw, ox + ow)
                row.append(((top - oy, left - ox, bottom - top, right - left), (ry, rx, rh, rw)))
            yield row
    else:
        for y in range(0, oh, TILE):
            yield [((y, x, min(TILE, oh - y), min(TILE, ow - x)),
                    (oy + y, ox + x, min(TILE, oh - y), min(TILE, ow - x)))
                   for x in range(0, ow, TILE)]


def clip_rect(rect: tuple[float, float, float, float], size: tuple[int, int]
              ) -> tuple[float, float, float, float]:
    """`rect` (y, x, h, w) clipped to an image of `size`; ValueError when nothing is left."""
    y, x, h, w = rect
    top, left = max(0.0, y), max(0.0, x)
    bottom, right = min(float(size[0]), y + h), min(float(size[1]), x + w)
    if bottom <= top or right <= left:
        raise ValueError(f"the region {rect} lies outside the photo ({size[1]} x {size[0]})")
    return top, left, bottom - top, right - left


def export_region(
    engine: Engine,
    path: str | os.PathLike,
    method: str,
    *,
    rect: tuple[float, float, float, float] | None = None,
    scale: float | None = None,
    size: tuple[int, int] | None = None,
    keep_metadata: bool = True,
    quality: int = 95,
    progress: Callable[[int, int], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
    overwrite: bool = True,
    warn: Callable[[str], None] | None = None,
) -> Path:
    """Render image rectangle `rect` (y, x, h, w; default the whole photo; clipped to it) with
    `method` at `scale` or exact `size` (H, W) and write it to `path` (PNG, JPEG, TIFF or WebP
    by suffix).

    progress(done_tiles, total_tiles) is called as tiles complete; when `cancelled()` returns
    True the export stops, leaves no file, and raises Cancelled. overwrite=False: an existing
    file, or one another program creates meanwhile, is never replaced (ImageSaveError).
    warn(message): told of metadata that cannot be written and is left out (default: warnings).

    Before anything is rendered: the destination, the size limits of the format, the metadata
    (`writable_metadata`) and, for JPEG, TIFF and WebP, disk space for the pixel buffer. After
    writing, the file is reopened (`verify_written`) before it takes its name.
    """
    path = Path(path)
    fmt = format_for(path)
    check_destination(path)
    engine.method(method)
    rect = clip_rect(rect or (0.0, 0.0, float(engine.size[0]), float(engine.size[1])),
                     engine.size)
    sc, offset, shape = export_geometry(rect, scale, size)
    if max(shape) > MAX_SIDE[fmt]:
        raise ImageSaveError(f"{path}: {fmt} images can be at most {MAX_SIDE[fmt]} pixels on a "
                             f"side; this export is {shape[1]} x {shape[0]}")
    alpha = engine.photo.alpha is not None and fmt in ALPHA_FORMATS
    channels = 4 if alpha else 3
    photo = engine.photo
    warn = warn or (lambda message: warnings.warn(message, stacklevel=3))
    exif, icc = writable_metadata(path, fmt, photo.exif if keep_metadata else None,
                                  photo.icc_profile if keep_metadata else None, warn)
    if not overwrite and path.exists():
        raise ImageSaveError(f"{path}: exists (not overwritten)")

    def verify(written: Path) -> None:
        verify_written(path, written, fmt, (shape[1], shape[0]))
    rows = list(_tiles(engine, as_scale(sc), offset, shape))
    total = sum(len(row) for row in rows)
    done = 0

    def strip_pixels(row) -> np.ndarray:
        """One strip of output rows, uint8 (h, W, channels)."""
        nonlocal done
        height = row[0][0][2]
        strip = np.empty((height, shape[1], channels), np.uint8)
        for (y, x, h, w), (ry, rx, rh, rw) in row:
            if cancelled is not None and cancelled():
                raise Cancelled
            pixels = engine.render_region(method, sc, (ry, rx), (rh, rw), cancelled)
            top, left = offset[0] + y - ry, offset[1] + x - rx
            top, left = round(top), round(left)
            strip[:, x:x + w, :3] = to_uint8(pixels[top:top + h, left:left + w])
            if alpha:
                a = engine.render_alpha(sc, (ry, rx), (rh, rw))
                strip[:, x:x + w, 3] = to_uint8(a[top:top + h, left:left + w])
            done += 1
            if progress is not None:
                progress(done, total)
        return strip

    if fmt == "PNG":
        with atomic_output(path, overwrite=overwrite, verify=verify) as handle:
            writer = PngStreamWriter(handle, shape[1], shape[0], channels, icc, exif)
            for row in rows:
                writer.write_rows(strip_pixels(row))
            writer.close()
        return path

    # JPEG, TIFF, WebP: a disk-backed buffer in Pillow's 4-byte layout, encoded without a copy.
    fd, buffer_name = tempfile.mkstemp(dir=path.parent if str(path.parent) else ".",
                                       prefix=f".{path.name}.", suffix=".pixels.part")
    track_temporary(buffer_name)
    try:
        # Reserve the buffer's disk space now: a memory map over a sparse file on a full disk
        # dies of SIGBUS at the first page that cannot be stored, with no message.
        reserve(fd, shape[0] * shape[1] * 4, path)
        os.close(fd)
        fd = -1
        pixels = np.memmap(buffer_name, dtype=np.uint8, mode="w+",
                           shape=(shape[0], shape[1], 4))
        if not alpha:
            pixels[..., 3] = 255
        y = 0
        for row in rows:
            strip = strip_pixels(row)
            pixels[y:y + strip.shape[0], :, :channels] = strip
            y += strip.shape[0]
        pixels.flush()
        mode = "RGBA" if alpha else "RGBX"
        image = Image.frombuffer(mode, (shape[1], shape[0]), pixels, "raw", mode, 0, 1)
        if fmt in ("HEIF", "AVIF") and not alpha:
            image = image.convert("RGB")  # their encoders take no padding byte (a copy)
        with atomic_output(path, overwrite=overwrite, verify=verify) as handle:
            image.save(handle, format=fmt, **save_options(fmt, exif, icc, quality))
        del image, pixels
    finally:
        if fd >= 0:
            os.close(fd)
        forget_temporary(buffer_name)
    return path


MAX_JPEG_EXIF = 65533
"""A JPEG APP1 segment holds at most 65535 bytes, its length field included."""
MAX_ICC = 1 << 20
"""Pillow refuses to read back a PNG whose ICC profile decompresses to more than 1 MB
(ImageFile.SAFEBLOCK); real profiles are a few kilobytes, rarely a few hundred."""


def writable_metadata(path: Path, fmt: str, exif: bytes | None, icc: bytes | None,
                      warn: Callable[[str], None]) -> tuple[bytes | None, bytes | None]:
    """(exif, icc) that `fmt` can hold and readers can read back; what cannot is left out and
    `warn` is told, before any pixel is rendered."""
    if exif and fmt == "JPEG" and len(exif) + 6 > MAX_JPEG_EXIF:
        warn(f"{path}: the photo's EXIF block ({len(exif) // 1024} KB) is larger than a JPEG "
             "can hold (64 KB); it is left out (PNG, TIFF and WebP can hold it)")
        exif = None
    if exif and fmt == "TIFF":
        kept, dropped = tiff_exif(exif)
        if dropped == ["damaged"]:
            warn(f"{path}: the photo's EXIF block is damaged; it is left out")
        elif dropped:
            warn(f"{path}: a compressed TIFF keeps the photo's main EXIF tags (camera, date, "
                 f"orientation) but not its {' and '.join(dropped)} details; PNG, JPEG and "
                 "WebP keep them all")
        exif = kept
    if icc and len(icc) > MAX_ICC:
        warn(f"{path}: the photo's colour profile ({len(icc) // 1024} KB) is too large for "
             "image readers (over 1 MB); it is left out")
        icc = None
    if icc:
        try:
            ImageCms.ImageCmsProfile(io.BytesIO(icc))
        except (ImageCms.PyCMSError, OSError, TypeError, ValueError):
            warn(f"{path}: the photo's colour profile is damaged; it is left out")
            icc = None
    return exif, icc


def reserve(fd: int, size: int, path: Path) -> None:
    """Allocate `size` bytes of disk for file descriptor `fd`, or raise ImageSaveError."""
    try:
        if hasattr(os, "posix_fallocate"):
            os.posix_fallocate(fd, 0, size)
        else:  # macOS, Windows: no posix_fallocate; the size at least is checked here
            os.ftruncate(fd, size)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            free = shutil.disk_usage(path.parent if str(path.parent) else ".").free
            raise ImageSaveError(
                f"{path}: no space left on the disk (this export needs {size / 2**20:,.0f} MB "
                f"of working space beside it, {free / 2**20:,.0f} MB are free)") from None
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):  # no fallocate on this disk
            raise ImageSaveError(f"{path}: could not be written ({exc.strerror})") from None
        os.ftruncate(fd, size)


def verify_written(path: Path, written: Path, fmt: str, size: tuple[int, int]) -> None:
    """Reopen a written file's header and metadata: format, size, readable profile and EXIF.
    ImageSaveError (the file is then not kept) if it does not read back."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(written) as image:
                ok = image.format == fmt and image.size == size
                _ = image.info.get("icc_profile"), image.getexif()
    except (OSError, SyntaxError, ValueError, struct.error, zlib.error) as exc:
        raise ImageSaveError(f"{path}: the written file does not read back ({exc}); it was "
                             "not kept") from None
    if not ok:
        raise ImageSaveError(f"{path}: the written file does not read back as a {size[0]} x "
                             f"{size[1]} {fmt}; it was not kept")
