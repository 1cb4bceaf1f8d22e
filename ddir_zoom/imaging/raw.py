"""Camera RAW files through rawpy (LibRaw): developed to sRGB, as the models were trained on.

Developing: LibRaw demosaics with the camera's own white balance (the "as shot" one recorded in
the file) into 16-bit linear sRGB, with LibRaw's usual exposure scaling (the brightest 1% at
white, as its `dcraw` ancestor and most RAW viewers do); we then apply the sRGB tone curve and
keep the result as float (no 8-bit rounding). LibRaw applies the file's orientation. EXIF
(camera, lens, exposure) is read from the TIFF structure most RAW formats share (DNG, NEF, ARW,
CR2, ORF, PEF, RW2); CR3 and RAF keep none.

`raw_preview` returns the JPEG preview embedded in the file at once (oriented the same way), so
the viewer can show a 45 MP RAW while it is being developed.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

RAW_SUFFIXES = {".dng", ".cr2", ".cr3", ".crw", ".nef", ".nrw", ".arw", ".srf", ".sr2",
                ".raf", ".orf", ".rw2", ".pef", ".srw", ".x3f", ".3fr", ".iiq", ".erf", ".kdc",
                ".mrw", ".rwl", ".raw"}
# Descriptive tags worth keeping from a RAW's first IFD (not its strip layout or CFA tags).
_KEEP_IFD0 = (0x010E, 0x010F, 0x0110, 0x0131, 0x0132, 0x013B, 0x8298)
_EXIF_IFD, _GPS_IFD = 0x8769, 0x8825


class RawError(Exception):
    """A RAW file could not be used; the message says why (the caller adds the file name)."""


def is_raw(path: str | Path) -> bool:
    return Path(path).suffix.lower() in RAW_SUFFIXES


def _rawpy():
    try:
        import rawpy
    except ImportError:
        raise RawError("camera RAW files need the rawpy package (pip install rawpy)") from None
    return rawpy


def srgb_curve(linear: np.ndarray) -> np.ndarray:
    """The sRGB transfer function (IEC 61966-2-1) of linear values in [0, 1], float32."""
    x = np.clip(linear, 0.0, 1.0).astype(np.float32, copy=False)
    return np.where(x <= 0.0031308, 12.92 * x,
                    1.055 * np.power(x, np.float32(1 / 2.4)) - 0.055).astype(np.float32)


def raw_size(path: str | Path) -> tuple[int, int]:
    """(height, width) of the developed image, oriented, read without developing."""
    rawpy = _rawpy()
    try:
        with rawpy.imread(str(path)) as raw:
            s = raw.sizes
            h, w = s.iheight, s.iwidth
            return (w, h) if s.flip in (5, 6) else (h, w)
    except (rawpy.LibRawError, OSError, ValueError) as exc:
        raise RawError(f"not a camera RAW file that LibRaw can read ({_reason(exc)})") from None


def develop(path: str | Path) -> np.ndarray:
    """float32 (h, w, 3) sRGB in [0, 1], oriented."""
    rawpy = _rawpy()
    try:
        with rawpy.imread(str(path)) as raw:
            linear = raw.postprocess(use_camera_wb=True, output_bps=16, gamma=(1, 1),
                                     output_color=rawpy.ColorSpace.sRGB)
    except (rawpy.LibRawError, OSError, ValueError) as exc:
        raise RawError(f"not a camera RAW file that LibRaw can read ({_reason(exc)})") from None
    return srgb_curve(linear.astype(np.float32) / 65535.0)


def raw_preview(path: str | Path) -> np.ndarray | None:
    """The embedded preview as uint8 (h, w, 3), oriented like the developed image, or None."""
    rawpy = _rawpy()
    try:
        with rawpy.imread(str(path)) as raw:
            flip = raw.sizes.flip
            thumb = raw.extract_thumb()
    except (rawpy.LibRawError, OSError, ValueError):
        return None
    if thumb.format == rawpy.ThumbFormat.JPEG:
        try:
            with Image.open(io.BytesIO(thumb.data)) as image:
                pixels = np.asarray(image.convert("RGB"))
        except (OSError, ValueError, SyntaxError):
            return None
    elif thumb.format == rawpy.ThumbFormat.BITMAP:
        pixels = np.asarray(thumb.data, dtype=np.uint8)
    else:
        return None
    # LibRaw's flip codes: 3 = 180 degrees, 5 = 90 counter-clockwise, 6 = 90 clockwise.
    turns = {3: 2, 5: 1, 6: -1}.get(flip, 0)
    return np.ascontiguousarray(np.rot90(pixels, turns)) if turns else pixels


def raw_exif(path: str | Path, limit: int = 1 << 20) -> bytes | None:
    """The descriptive EXIF of a TIFF-based RAW (camera, date, lens, exposure, GPS), with
    orientation 1 (the developed pixels are upright), or None."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(limit)
    except OSError:
        return None
    if head[:4] not in (b"II*\x00", b"MM\x00*"):
        return None
    source = Image.Exif()
    try:
        source.load(head)
        out = Image.Exif()
        for tag in _KEEP_IFD0:
            if tag in source:
                out[tag] = source[tag]
        out[0x0112] = 1
        for ifd in (_EXIF_IFD, _GPS_IFD):
            values = source.get_ifd(ifd)
            if values:
                target = out.get_ifd(ifd)
                target.update({k: v for k, v in values.items() if not isinstance(v, dict)})
        return out.tobytes()
    except (OSError, ValueError, SyntaxError, KeyError, TypeError, IndexError):
        return None


def _reason(exc: Exception) -> str:
    return str(exc) or type(exc).__name__
