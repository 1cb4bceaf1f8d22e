"""Loading and saving photos as float RGB arrays, keeping what an export must write back.

A loaded `Photo` holds RGB as float32 in [0, 1] (height, width, 3) with the EXIF orientation
already applied, alpha kept apart (so it can be resampled on its own and written back), and the
EXIF block and ICC profile of the source for export. 16-bit sources keep their 16 bits.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import struct
import sys
import tempfile
import warnings
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageCms, ImageFile, UnidentifiedImageError

from ddir_zoom.imaging.raw import RawError, develop, is_raw, raw_exif, raw_size

# We check the pixel count from the header ourselves (`max_pixels`), before anything is decoded,
# so Pillow's process-wide bomb limit would only get in the way of a user who raises ours.
Image.MAX_IMAGE_PIXELS = None

try:  # HEIC / HEIF from phones: pillow-heif, a Pillow plugin over libheif
    import pillow_heif

    pillow_heif.register_heif_opener()
except ImportError:  # pragma: no cover - a plain dependency; its absence is reported per file
    pillow_heif = None

DEFAULT_MAX_PIXELS = 150_000_000
"""Largest image `load_photo` accepts by default: 150 MP, 1.8 GB as float32 RGB."""

READ_FORMATS = {"JPEG": "JPEG", "MPO": "JPEG", "PNG": "PNG", "TIFF": "TIFF", "WEBP": "WebP",
                "BMP": "BMP", "HEIF": "HEIF", "AVIF": "AVIF"}
WRITE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF",
                 ".webp": "WEBP", ".heic": "HEIF", ".heif": "HEIF", ".avif": "AVIF"}
ALPHA_FORMATS = {"PNG", "TIFF", "WEBP", "HEIF", "AVIF"}
LOSSY_FORMATS = {"JPEG", "WEBP", "HEIF", "AVIF"}
_EXIF_ORIENTATION = 0x0112
# Errors Pillow's decoders raise on damaged data.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error,
                  IndexError, TypeError)


_PENDING: set[str] = set()
"""Temporary files being written. A program that exits while a background thread still writes
one (the viewer closing during an export's final encode) removes them at exit."""


def track_temporary(name: str) -> None:
    _PENDING.add(name)


def forget_temporary(name: str) -> None:
    _PENDING.discard(name)
    with contextlib.suppress(OSError):
        os.unlink(name)


@atexit.register
def _remove_pending() -> None:
    for name in list(_PENDING):
        forget_temporary(name)


class ImageLoadError(Exception):
    """A photo could not be opened; the message names the file and the reason."""


class ImageSaveError(Exception):
    """A photo could not be written; the message names the file and the reason."""


@dataclass
class Photo:
    """A decoded photo.

    rgb: float32 (height, width, 3) in [0, 1], EXIF orientation applied.
    alpha: float32 (height, width) in [0, 1], or None when the source has no transparency.
    exif: the source's EXIF block with its orientation reset to 1 (the pixels are upright now).
    icc_profile: the source's ICC profile, or None (the pixels are then taken as sRGB).
    bit_depth: 8 or 16, per channel, of the source.
    rgb8: for 8-bit sources, the decoded 8-bit RGB (what rgb was made from), so that displays
    need not convert back; None otherwise.
    """

    rgb: np.ndarray
    alpha: np.ndarray | None = None
    exif: bytes | None = None
    icc_profile: bytes | None = None
    bit_depth: int = 8
    source: Path | None = None
    format: str | None = None
    rgb8: np.ndarray | None = None

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])


def load_photo(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> Photo:
    """Decode a JPEG, PNG, TIFF, WebP or BMP file into a `Photo`.

    Raises ImageLoadError, naming the file, for a missing file, a file that is not a supported
    image, a zero-size image, one with more than `max_pixels` pixels (checked from the header,
    before decoding), and a truncated or corrupt file.
    """
    path = Path(path)
    # Pillow's warnings (corrupt EXIF, odd chunks) are not the user's concern: what cannot be
    # decoded is refused with a message instead.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            photo = _load(path, max_pixels)
        except PermissionError:
            raise ImageLoadError(f"{path}: permission denied (the file or its folder cannot be "
                                 "read)") from None
    photo.source = path
    return photo


def _load(path: Path, max_pixels: int) -> Photo:
    if not path.exists():
        raise ImageLoadError(f"{path}: no such file")
    if path.is_dir():
        raise ImageLoadError(f"{path}: is a folder, not an image file")
    if is_raw(path):
        return _load_raw(path, max_pixels)
    try:
        image = Image.open(path)
    except UnidentifiedImageError:
        raise ImageLoadError(f"{path}: {_why_unidentified(path)}") from None
    except PermissionError:
        raise ImageLoadError(f"{path}: permission denied") from None
    except _DECODE_ERRORS as exc:
        raise ImageLoadError(f"{path}: corrupt image header ({exc})") from None
    with image:
        if image.format not in READ_FORMATS:
            supported = ", ".join(sorted(set(READ_FORMATS.values())))
            raise ImageLoadError(
                f"{path}: {image.format} images are not supported (supported: {supported})")
        width, height = image.size
        if width <= 0 or height <= 0:
            raise ImageLoadError(f"{path}: the image has zero size ({width}x{height})")
        if width * height > max_pixels:
            raise ImageLoadError(
                f"{path}: the image is too large ({width}x{height} = {width * height / 1e6:.1f} "
                f"megapixels; the limit is {max_pixels / 1e6:.1f} megapixels)")
        if image.format == "PNG":
            check_png_chunks(path)
        try:
            return _decode(image)
        except ImageLoadError:
            raise
        except MemoryError:
            raise ImageLoadError(f"{path}: not enough memory to decode the image") from None
        except _DECODE_ERRORS as exc:
            raise ImageLoadError(f"{path}: the file is truncated or corrupt ({exc})") from None


def _load_raw(path: Path, max_pixels: int) -> Photo:
    """A camera RAW file, developed (`imaging.raw`)."""
    try:
        height, width = raw_size(path)
        if height * width > max_pixels:
            raise ImageLoadError(
                f"{path}: the image is too large ({width}x{height} = {width * height / 1e6:.1f} "
                f"megapixels; the limit is {max_pixels / 1e6:.1f} megapixels)")
        rgb = develop(path)
    except RawError as exc:
        raise ImageLoadError(f"{path}: {exc}") from None
    except MemoryError:
        raise ImageLoadError(f"{path}: not enough memory to develop the RAW file") from None
    return Photo(rgb=rgb, exif=raw_exif(path), bit_depth=16, format="RAW")


def check_png_chunks(path: Path, block: int = 1 << 20) -> None:
    """Verify every chunk's CRC of a PNG file: Pillow skips the check for the image data
    (IDAT), so a damaged file would otherwise decode to wrong pixels without a word."""
    with open(path, "rb") as handle:
        handle.seek(8)
        while True:
            head = handle.read(8)
            if len(head) < 8:
                raise ImageLoadError(f"{path}: the file is truncated (no IEND chunk)")
            length, kind = struct.unpack(">I4s", head)
            crc = zlib.crc32(kind)
            left = length
            while left:
                data = handle.read(min(block, left))
                if not data:
                    raise ImageLoadError(f"{path}: the file is truncated")
                crc = zlib.crc32(data, crc)
                left -= len(data)
            stored = handle.read(4)
            if len(stored) < 4:
                raise ImageLoadError(f"{path}: the file is truncated")
            if struct.unpack(">I", stored)[0] != crc & 0xFFFFFFFF:
                name = kind.decode("latin-1")
                raise ImageLoadError(f"{path}: the file is corrupt (bad checksum in its {name} "
                                     "chunk)")
            if kind == b"IEND":
                return


_SIGNATURES = {b"\x89PNG\r\n\x1a\n": "PNG", b"\xff\xd8\xff": "JPEG", b"BM": "BMP",
               b"II*\x00": "TIFF", b"MM\x00*": "TIFF", b"RIFF": "WebP"}
_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"}
_AVIF_BRANDS = {b"avif", b"avis"}


def _why_unidentified(path: Path) -> str:
    """Reason for a file Pillow could not identify: an image format with a broken header
    (zero width or height included), or not an image at all."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(32)
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if not head:
        return "the file is empty"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _AVIF_BRANDS:
            return ("looks like an AVIF file, but it is damaged or this Pillow cannot read AVIF "
                    "(Pillow 11.3 or later reads it)")
        if brand in _HEIF_BRANDS:
            if pillow_heif is None:
                return "HEIC/HEIF photos need the pillow-heif package (pip install pillow-heif)"
            return "looks like a HEIC/HEIF file, but it is damaged or uses an unsupported codec"
    for signature, fmt in _SIGNATURES.items():
        if head.startswith(signature) and (fmt != "WebP" or head[8:12] == b"WEBP"):
            size = None
            if fmt == "PNG" and head[12:16] == b"IHDR":
                size = struct.unpack(">II", head[16:24])
            elif fmt == "BMP" and len(head) >= 26:
                size = struct.unpack("<ii", head[18:26])
            if size is not None and (size[0] == 0 or size[1] == 0):
                return f"the image has zero size ({abs(size[0])}x{abs(size[1])})"
            return f"looks like a {fmt} file, but its header is damaged or unsupported"
    return "not an image, or an image format that cannot be read"


def _decode(image: Image.Image) -> Photo:
    """Pixels, alpha and metadata of an opened image; orientation applied."""
    fmt = READ_FORMATS[image.format]
    tiles = list(image.tile)  # read before getexif(), which may decode the image (PNG)
    icc = image.info.get("icc_profile") or None
    exif = image.getexif()
    orientation = int(exif.get(_EXIF_ORIENTATION, 1) or 1)
    if getattr(image, "n_frames", 1) > 1:
        image.seek(0)

    if image.mode == "CMYK":
        rgb, icc = _cmyk_to_srgb(image, icc)
        alpha, bit_depth = None, 8
    elif image.format == "HEIF" and image.info.get("bit_depth", 8) > 8:
        rgb, alpha, bit_depth = _heif_high_depth(image)
    else:
        rgb, alpha, bit_depth = _pixels(image, tiles)
    rgb8 = None
    if rgb.dtype == np.uint8:  # 8-bit sources come back as uint8, converted once here
        rgb8 = np.array(_orient(rgb, orientation), order="C")  # a writable copy
        rgb = rgb8

    if rgb8 is None:
        rgb = _orient(rgb, orientation)
    alpha = None if alpha is None else _orient(alpha, orientation)
    exif_bytes = None
    if len(exif):
        if _EXIF_ORIENTATION in exif:
            exif[_EXIF_ORIENTATION] = 1
        exif_bytes = exif.tobytes()
    return Photo(rgb=unit_float(rgb) if rgb8 is not None else
                 np.ascontiguousarray(rgb, dtype=np.float32),
                 alpha=None if alpha is None else np.ascontiguousarray(alpha, dtype=np.float32),
                 exif=exif_bytes, icc_profile=icc, bit_depth=bit_depth, format=fmt, rgb8=rgb8)


def _heif_high_depth(image: Image.Image) -> tuple[np.ndarray, np.ndarray | None, int]:
    """A 10- or 12-bit HEIF in float, all its bits kept: Pillow's view of it is 8-bit, so the
    file is decoded again by pillow-heif at its own depth (which, like Pillow's, applies the
    file's rotation and mirroring)."""
    depth = int(image.info["bit_depth"])
    heif = pillow_heif.open_heif(image.filename, convert_hdr_to_8bit=False)
    data = np.asarray(heif)  # uint16, the samples in the high bits
    values = (data >> (16 - depth)).astype(np.float32) / float(2**depth - 1)
    alpha = values[..., 3] if values.shape[-1] == 4 else None
    return values[..., :3], alpha, 16


def unit_float(pixels: np.ndarray) -> np.ndarray:
    """uint8 -> float32 in [0, 1], in one pass."""
    return np.multiply(pixels, np.float32(1.0 / 255.0), dtype=np.float32)


def _pixels(image: Image.Image, tiles: list) -> tuple[np.ndarray, np.ndarray | None, int]:
    """(rgb, alpha float32 or None, bit depth) of any Pillow mode; rgb is uint8 for 8-bit
    sources, float32 in [0, 1] otherwise."""
    mode = image.mode
    if mode in ("RGB", "RGBA") and any(";16" in _rawmode(t) for t in tiles):
        data = _decode_16bit(image, tiles)
        rgb = data[..., :3]
        alpha = data[..., 3] if mode == "RGBA" else None
        return rgb, alpha, 16
    if mode.startswith("I;16"):
        gray = np.asarray(image).astype(np.float32) / 65535.0
        return np.repeat(gray[..., None], 3, axis=2), None, 16
    if mode == "I":
        # 32-bit integer images here are 16-bit data widened by Pillow (PNG, TIFF).
        gray = np.clip(np.asarray(image).astype(np.float64) / 65535.0, 0.0, 1.0)
        return np.repeat(gray[..., None].astype(np.float32), 3, axis=2), None, 16
    if mode == "F":
        gray = np.clip(np.nan_to_num(np.asarray(image, dtype=np.float32)), 0.0, 1.0)
        return np.repeat(gray[..., None], 3, axis=2), None, 16
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        mode in ("P", "L", "RGB") and "transparency" in image.info)
    if mode in ("L", "LA", "La") or mode == "1":
        converted = image.convert("LA" if has_alpha else "L")
        data = np.asarray(converted)
        if has_alpha:
            return np.repeat(data[..., :1], 3, axis=2), unit_float(data[..., 1]), 8
        return np.repeat(data[..., None], 3, axis=2), None, 8
    converted = image.convert("RGBA" if has_alpha else "RGB")
    data = np.asarray(converted)
    if has_alpha:
        return data[..., :3], unit_float(data[..., 3]), 8
    return data, None, 8


def _rawmode(tile: ImageFile._Tile) -> str:
    args = tile.args
    if isinstance(args, str):
        return args
    return str(args[0]) if isinstance(args, tuple) and args else ""


def _decode_16bit(image: Image.Image, tiles: list) -> np.ndarray:
    """Full 16-bit RGB(A) of a PNG or TIFF as float32 in [0, 1].

    Pillow has no 16-bit colour mode and keeps only the high byte of each sample. Its decoders
    unpack by a raw mode that names the byte order, so decoding a second time with the opposite
    order yields the low bytes: two passes of Pillow's own C decoder give all 16 bits.
    """
    native_opposite = "16B" if sys.byteorder == "little" else "16L"
    swap = {"16B": "16L", "16L": "16B", "16N": native_opposite}

    def swapped(tile: ImageFile._Tile) -> ImageFile._Tile:
        rawmode = _rawmode(tile)
        for old, new in swap.items():
            if rawmode.endswith(old):
                rawmode = rawmode[: -len(old)] + new
                break
        args = rawmode if isinstance(tile.args, str) else (rawmode, *tile.args[1:])
        return tile._replace(args=args)

    filename = image.filename
    image.load()
    high = np.asarray(image).astype(np.uint16)
    with Image.open(filename) as again:
        again.tile = [swapped(t) for t in tiles]
        again.load()
        low = np.asarray(again).astype(np.uint16)
    return ((high << 8) | low).astype(np.float32) / 65535.0


def _cmyk_to_srgb(image: Image.Image, icc: bytes | None) -> tuple[np.ndarray, None]:
    """CMYK to sRGB, through the embedded profile when there is one. The CMYK profile no longer
    describes the pixels afterwards, so it is dropped."""
    converted = None
    if icc:
        with contextlib.suppress(ImageCms.PyCMSError, OSError):
            source = ImageCms.ImageCmsProfile(ImageCms.core.profile_frombytes(icc))
            converted = ImageCms.profileToProfile(
                image, source, ImageCms.createProfile("sRGB"), outputMode="RGB")
    if converted is None:
        converted = image.convert("RGB")
    return np.asarray(converted).astype(np.float32) / 255.0, None


def _orient(array: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1-8) to an (h, w[, c]) array, as Pillow's exif_transpose."""
    if orientation == 2:
        return array[:, ::-1]
    if orientation == 3:
        return array[::-1, ::-1]
    if orientation == 4:
        return array[::-1]
    if orientation == 5:
        return np.swapaxes(array, 0, 1)
    if orientation == 6:
        return np.rot90(array, -1)
    if orientation == 7:
        return np.swapaxes(array, 0, 1)[::-1, ::-1]
    if orientation == 8:
        return np.rot90(array, 1)
    return array


def to_uint8(array: np.ndarray) -> np.ndarray:
    """Float [0, 1] to uint8, rounding to nearest (NaN becomes 0)."""
    scaled = np.multiply(array, np.float32(255.0), dtype=np.float32)
    scaled += np.float32(0.5)
    np.clip(scaled, 0.0, 255.0, out=scaled)
    np.nan_to_num(scaled, copy=False)
    return scaled.astype(np.uint8)


def check_destination(path: Path) -> None:
    """Raise ImageSaveError unless `path` can be created: its folder exists, it is no folder."""
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise ImageSaveError(f"{path}: the folder {parent} does not exist")
    if path.is_dir():
        raise ImageSaveError(f"{path}: is a folder")


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, *, overwrite: bool = True,
                  verify: Callable[[Path], None] | None = None) -> Iterator[BinaryIO]:
    """A binary file that becomes `path` only when the block completes: written beside it under
    a temporary name, flushed to disk, checked by `verify(temporary path)` and moved into place.
    On any error or cancellation inside the block the temporary file is removed and `path` is
    left as it was.

    overwrite=False: `path` is created exclusively (a hard link, or O_EXCL where links are not
    supported), so that of two processes writing the same new file one fails instead of
    silently replacing the other's.
    """
    path = Path(path)
    check_destination(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not overwrite and path.exists():
        raise ImageSaveError(f"{path}: exists (not overwritten)")
    try:
        fd, tmp_name = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.", suffix=".part")
    except OSError as exc:
        raise ImageSaveError(f"{path}: cannot write in {parent} ({exc.strerror})") from None
    track_temporary(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        default_permissions(tmp_name)
        if verify is not None:
            verify(Path(tmp_name))
        if overwrite:
            os.replace(tmp_name, path)
        else:
            _create_exclusively(Path(tmp_name), path)
        _PENDING.discard(tmp_name)
    except BaseException as exc:
        forget_temporary(tmp_name)
        if isinstance(exc, FileExistsError):
            raise ImageSaveError(f"{path}: was created by another program while this one was "
                                 "writing it (not overwritten)") from None
        if isinstance(exc, OSError) and not isinstance(exc, ImageSaveError):
            reason = exc.strerror or str(exc)  # the temporary name means nothing to the user
            raise ImageSaveError(f"{path}: could not be written ({reason})") from None
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write a text file (a result JSON, a model card) complete or not at all: an interrupted
    script leaves the previous version, never a truncated one that a later report would misread."""
    data = text.encode("utf-8")  # encoded first: an encoding error must not touch the file
    with atomic_output(path) as handle:
        handle.write(data)


def default_permissions(path: str | os.PathLike) -> None:
    """Give a file made by mkstemp (private, 0600) the permissions a normal new file gets."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def _create_exclusively(tmp: Path, path: Path) -> None:
    try:
        os.link(tmp, path)  # fails with FileExistsError if the name was taken meanwhile
    except FileExistsError:
        raise
    except OSError:  # no hard links here (FAT, some network shares): claim the name first
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        os.close(fd)
        os.replace(tmp, path)
        return
    os.unlink(tmp)


def format_for(path: Path) -> str:
    """Pillow format name for a file name's suffix; ImageSaveError for an unknown one."""
    fmt = WRITE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        supported = ", ".join(sorted(WRITE_FORMATS))
        raise ImageSaveError(f"{path}: unknown file type '{path.suffix}' (use one of {supported})")
    return fmt


TIFF_SUBDIRECTORY_TAGS = {0x8769: "Exif", 0x8825: "GPS", 0xA005: "interoperability",
                          0x014A: "sub-image"}
"""EXIF tags that point to further directories. A compressed TIFF is written by libtiff, which
cannot write them from an EXIF block: it prints an error to stderr and Pillow raises."""


def tiff_exif(exif: bytes | None) -> tuple[bytes | None, list[str]]:
    """`exif` as a compressed TIFF can hold it: the main directory's tags (camera, date,
    orientation, author), without the sub-directories (exposure, GPS). Returns the block (None
    if nothing is left or it does not parse) and the names of the directories left out."""
    if not exif:
        return None, []
    try:
        parsed = Image.Exif()
        parsed.load(exif)
        dropped = [name for tag, name in TIFF_SUBDIRECTORY_TAGS.items() if tag in parsed]
        for tag in TIFF_SUBDIRECTORY_TAGS:
            parsed.pop(tag, None)
        return (parsed.tobytes() if len(parsed) else None), dropped
    except (OSError, SyntaxError, ValueError, TypeError, KeyError, struct.error):
        return None, ["damaged"]


def save_options(fmt: str, exif: bytes | None, icc_profile: bytes | None, quality: int) -> dict:
    """Pillow save options of ddir-zoom for a format."""
    options: dict = {}
    if exif:
        options["exif"] = exif
    if icc_profile:
        options["icc_profile"] = icc_profile
    if fmt in LOSSY_FORMATS:
        options["quality"] = int(quality)
    if fmt == "TIFF":
        options["compression"] = "tiff_deflate"
    return options


def save_photo(
    path: str | os.PathLike,
    rgb: np.ndarray,
    alpha: np.ndarray | None = None,
    *,
    exif: bytes | None = None,
    icc_profile: bytes | None = None,
    quality: int = 95,
) -> Path:
    """Write float RGB in [0, 1] (and optional alpha) as 8-bit PNG, JPEG, TIFF or WebP.

    The format follows the suffix. The file appears complete or not at all (`atomic_output`).
    An existing file is replaced; whether that is allowed is the caller's decision. JPEG has no
    alpha channel: alpha is dropped. Raises ImageSaveError naming the file and the reason.
    """
    path = Path(path)
    fmt = format_for(path)
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ImageSaveError(f"{path}: expected a non-empty (height, width, 3) array, "
                             f"got shape {rgb.shape}")
    if alpha is not None and np.shape(alpha) != rgb.shape[:2]:
        raise ImageSaveError(f"{path}: alpha shape {np.shape(alpha)} does not match the image "
                             f"{rgb.shape[:2]}")
    pixels = to_uint8(rgb)
    if alpha is not None and fmt in ALPHA_FORMATS:
        pixels = np.concatenate([pixels, to_uint8(np.asarray(alpha))[..., None]], axis=2)
    image = Image.fromarray(pixels, "RGBA" if pixels.shape[2] == 4 else "RGB")
    if fmt == "TIFF":
        exif, _ = tiff_exif(exif)  # what libtiff can write (the exporter warns of the rest)
    with atomic_output(path) as handle:
        image.save(handle, format=fmt, **save_options(fmt, exif, icc_profile, quality))
    return path
