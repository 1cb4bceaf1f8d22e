"""Shared fixtures. Qt runs offscreen so the tests need no display."""

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def render_upscale(model, lr, scale: float):
    """`model`'s whole upscale of RGB `lr` (1, 3, h, w) by `scale`, clamped to [0, 1]: every
    output pixel's centre, as the engine asks for it."""
    h, w = lr.shape[-2:]
    rows, cols = int(h * scale), int(w * scale)
    ys = (torch.arange(rows, dtype=torch.float64) + 0.5) / scale
    xs = (torch.arange(cols, dtype=torch.float64) + 0.5) / scale
    coords = torch.stack(torch.meshgrid(ys, xs, indexing="ij"), -1).view(1, -1, 2)
    cells = torch.full((1, rows * cols, 2), 1 / scale)
    grids, appearance = model.prepare(lr)
    return model.query(grids, coords, cells, (h, w), appearance).clamp(0, 1)


def psnr(a, b) -> float:
    """PSNR (dB) of two tensors in [0, 1]."""
    return float(10 * torch.log10(1 / ((a - b) ** 2).mean()))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def write_png16(path: Path, array: np.ndarray) -> None:
    """A 16-bit RGB or RGBA PNG, written by hand (Pillow cannot write one). Rows use the Paeth
    filter's simpler cousins (Sub on odd rows) so the decoder's unfiltering is exercised."""
    h, w, c = array.shape
    color_type = {3: 2, 4: 6}[c]
    raw = []
    bpp = 2 * c
    for y, row in enumerate(array):
        data = np.frombuffer(row.astype(">u2").tobytes(), np.uint8).astype(np.int32)
        if y % 2:
            sub = data.copy()
            sub[bpp:] = (data[bpp:] - data[:-bpp]) % 256
            raw.append(b"\x01" + sub.astype(np.uint8).tobytes())
        else:
            raw.append(b"\x00" + data.astype(np.uint8).tobytes())

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                     + chunk(b"IDAT", zlib.compress(b"".join(raw))) + chunk(b"IEND", b""))


def write_tiff16(path: Path, array: np.ndarray) -> None:
    """An uncompressed little-endian 16-bit RGB TIFF, written by hand."""
    h, w, c = array.shape
    pixels = array.astype("<u2").tobytes()
    entries = []
    bits_offset = 8
    data_offset = bits_offset + 2 * c
    ifd_offset = data_offset + len(pixels)
    tags = [(256, 3, 1, w), (257, 3, 1, h), (258, 3, c, bits_offset), (259, 3, 1, 1),
            (262, 3, 1, 2), (273, 4, 1, data_offset), (277, 3, 1, c), (278, 3, 1, h),
            (279, 4, 1, len(pixels)), (284, 3, 1, 1)]
    for tag, kind, count, value in tags:
        if kind == 4 or count > 1:
            packed = struct.pack("<I", value)
        else:
            packed = struct.pack("<HH", value, 0)
        entries.append(struct.pack("<HHI", tag, kind, count) + packed)
    ifd = struct.pack("<H", len(entries)) + b"".join(entries) + struct.pack("<I", 0)
    path.write_bytes(b"II*\x00" + struct.pack("<I", ifd_offset) + struct.pack("<" + "H" * c,
                     *([16] * c)) + pixels + ifd)


@pytest.fixture
def full_disk(monkeypatch):
    """Every atomic write (`ddir_zoom.imaging.io.atomic_output`) fails as on a full disk, at the
    fsync that would make it durable. `full_disk.undo()` frees the disk again."""
    from ddir_zoom.imaging import io as imaging_io

    def no_space(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(imaging_io.os, "fsync", no_space)
    return monkeypatch
