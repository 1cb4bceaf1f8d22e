"""The `ddir-zoom` program.

    ddir-zoom [IMAGE]                 open the viewer (on the bundled sample without IMAGE)
    ddir-zoom upscale IN [IN ...] ... upscale photos from the command line

`upscale` renders through the same engine and exporter as the viewer, so its pixels are the
viewer's. Run `ddir-zoom upscale --help` for its options.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import signal
import sys
import textwrap
import time
from pathlib import Path

from ddir_zoom import __version__

METHOD_CHOICES = ("ddir", "liif", "bicubic")
MAX_SIDE = 1_000_000
MAX_OUTPUT_PIXELS = 500_000_000
"""Outputs larger than this (500 MP, 1.5 GB as 8-bit RGB; hours of DDIR on a CPU) need --force:
a typo in --size or --scale must not start a job of a day."""
FORMAT_SUFFIX = {"png": ".png", "jpg": ".jpg", "jpeg": ".jpg", "tif": ".tif", "tiff": ".tif",
                 "webp": ".webp", "heic": ".heic", "avif": ".avif"}


def _viewer_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ddir-zoom",
        description=textwrap.fill(
            "A photo viewer whose zoom renders every visible pixel at the exact scale with DDIR "
            "(real-world arbitrary-scale super-resolution).", 78),
        epilog="Commands:\n"
               "  ddir-zoom [IMAGE]          open the viewer\n"
               "  ddir-zoom upscale IN ...   upscale photos from the command line; see\n"
               "                             ddir-zoom upscale --help",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("image", nargs="?", help="photo to open (default: the bundled sample)")
    parser.add_argument("--version", action="version", version=f"ddir-zoom {__version__}")
    parser.add_argument("--threads", type=int, default=0, metavar="N",
                        help="CPU threads (default: the Threads setting, else the cores not "
                             "busy with other programs)")
    parser.add_argument("--self-test", action="store_true",
                        help="open the photo, wait for a fully refined frame, print the timing "
                             "and exit (0 on success): a smoke check for installs and bundles")
    return parser


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected WIDTHxHEIGHT, e.g. 1920x1080, got {text!r}") from None
    if w <= 0 or h <= 0:
        raise argparse.ArgumentTypeError(f"the size must be positive, got {text!r}")
    if w > MAX_SIDE or h > MAX_SIDE:
        raise argparse.ArgumentTypeError(f"at most {MAX_SIDE} pixels a side, got {text!r}")
    return w, h


def _crop(text: str) -> tuple[float, float, float, float]:
    try:
        x, y, w, h = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected X,Y,W,H, e.g. 100,50,640,480, got {text!r}") from None
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        raise argparse.ArgumentTypeError(f"the crop must be four finite numbers, got {text!r}")
    if w <= 0 or h <= 0:
        raise argparse.ArgumentTypeError(f"the crop must have a positive size, got {text!r}")
    return x, y, w, h


def _scale(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or not 0.05 <= value <= 32:
        raise argparse.ArgumentTypeError(f"the scale must be between 0.05 and 32, got {value}")
    return value


def upscale_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ddir-zoom upscale",
        description=textwrap.fill(
            "Upscale photos with DDIR, LIIF or bicubic interpolation, at any scale or to an "
            "exact size. Every file is processed even if some fail; the exit status is 1 when "
            "any failed.", 78),
        epilog="Examples:\n"
               "  ddir-zoom upscale photo.jpg --scale 2.7 -o photo_x2.7.png\n"
               "  ddir-zoom upscale *.jpg --scale 2 --method liif -o upscaled/\n"
               "  ddir-zoom upscale photo.jpg --size 3840x2160 --crop 100,50,1280,720 -o out.tif",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", metavar="IN", help="photos to upscale (JPEG, PNG, "
                        "TIFF, WebP, BMP, HEIC, AVIF, camera RAW)")
    size = parser.add_mutually_exclusive_group(required=True)
    size.add_argument("--scale", type=_scale, metavar="S",
                      help="scale factor, any value from 0.05 to 32 (e.g. 2.5)")
    size.add_argument("--size", type=_size, metavar="WxH",
                      help="exact output size in pixels, e.g. 3840x2160 (the aspect ratio "
                           "follows it, even if it differs from the input's)")
    parser.add_argument("--method", choices=METHOD_CHOICES, default=None,
                        help="ddir (the default), liif or bicubic; with --weights, the kind of "
                             "model the file must hold")
    parser.add_argument("--weights", metavar="FILE",
                        help="a model file (.safetensors) instead of the bundled weights of "
                             "--method; its architecture comes from the file")
    parser.add_argument("--crop", type=_crop, metavar="X,Y,W,H",
                        help="upscale only this rectangle of each input, in input pixels")
    parser.add_argument("--device", default="auto",
                        help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:1, mps")
    parser.add_argument("--threads", type=int, default=0, metavar="N",
                        help="CPU threads (default: the cores not busy with other programs)")
    parser.add_argument("--precision", choices=("float32", "bfloat16"), default="float32",
                        help="float32 (exact, the default) or bfloat16: the models' hidden "
                             "layers in bfloat16, about twice as fast on processors that "
                             "multiply it natively, at most a level of 255 from float32")
    parser.add_argument("-o", "--output", required=True, metavar="OUT",
                        help="output file (one input), or a folder: files are then named "
                             "NAME_xSCALE.FORMAT")
    parser.add_argument("--format", choices=sorted(FORMAT_SUFFIX), default=None,
                        help="file format of outputs in a folder (default png); for a file "
                             "output the suffix decides")
    parser.add_argument("--quality", type=int, default=95, metavar="Q",
                        help="JPEG, WebP, HEIC and AVIF quality, 1-100 (default 95)")
    parser.add_argument("--no-metadata", action="store_true",
                        help="do not copy EXIF and the colour profile to the outputs")
    parser.add_argument("--force", action="store_true",
                        help="overwrite existing output files (never done without it)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _output_path(args: argparse.Namespace, source: Path, folder_output: bool) -> Path:
    if not folder_output:
        return Path(args.output)
    suffix = FORMAT_SUFFIX[args.format or "png"]
    tag = f"x{args.scale:g}" if args.scale is not None else f"{args.size[0]}x{args.size[1]}"
    return Path(args.output) / f"{source.stem}_{tag}{suffix}"


def _join_option_values(argv: list[str], options: tuple[str, ...] = ("--crop",)) -> list[str]:
    """'--crop -50,-50,100,100' as '--crop=-50,-50,100,100': argparse would take a value that
    starts with '-' (and is no plain number) for an option."""
    out, i = [], 0
    while i < len(argv):
        if argv[i] in options and i + 1 < len(argv):
            out.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out


def upscale_main(argv: list[str]) -> int:
    args = upscale_parser().parse_args(_join_option_values(argv))
    if not 1 <= args.quality <= 100:
        upscale_parser().error("--quality must be between 1 and 100")

    # Imported here so that `ddir-zoom --help` and the viewer start without loading torch twice.
    from tqdm import tqdm

    from ddir_zoom.engine import Engine
    from ddir_zoom.engine.export import export_geometry, export_region
    from ddir_zoom.imaging import ImageLoadError, ImageSaveError, load_photo
    from ddir_zoom.models import CheckpointError, load_checkpoint, pick_device
    from ddir_zoom.resources import bundled_weights
    from ddir_zoom.threads import configure

    configure(args.threads)
    try:
        device = pick_device(args.device)
    except ValueError as exc:
        print(f"ddir-zoom upscale: {exc}", file=sys.stderr)
        return 2
    model = None
    if args.weights or args.method != "bicubic":
        weights = Path(args.weights) if args.weights else bundled_weights(args.method or "ddir")
        try:
            model, _ = load_checkpoint(weights, device="cpu", expect_model=args.method)
        except CheckpointError as exc:
            print(f"ddir-zoom upscale: {exc}", file=sys.stderr)
            return 2
    method = model.name if model is not None else "bicubic"

    output = Path(args.output)
    folder_output = len(args.inputs) > 1 or output.is_dir() or args.output.endswith(("/", "\\"))
    if folder_output:
        if output.exists() and not output.is_dir():
            print(f"ddir-zoom upscale: {output} is a file; with several inputs -o must be a "
                  "folder", file=sys.stderr)
            return 2
        try:
            output.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            print(f"ddir-zoom upscale: cannot create the folder {output} "
                  f"({exc.strerror or exc})", file=sys.stderr)
            return 2
    elif output.suffix.lower() not in FORMAT_SUFFIX.values() and output.suffix.lower() not in (
            ".jpeg", ".tiff", ".heif"):
        print(f"ddir-zoom upscale: {output}: unknown file type '{output.suffix}' "
              "(use .png, .jpg, .tif, .webp, .heic or .avif, or give a folder)", file=sys.stderr)
        return 2

    failures = 0
    files = tqdm(args.inputs, unit="photo", disable=args.quiet or len(args.inputs) == 1,
                 file=sys.stderr)

    def warn(message: str) -> None:
        tqdm.write(f"warning: {message}", file=sys.stderr)

    def fail(source: Path, exc: Exception) -> None:
        text = str(exc)  # our messages start with the file's name already
        tqdm.write(f"failed: {text}" if text.startswith(str(source)) or
                   text.startswith(str(target)) else f"failed: {source}: {text}",
                   file=sys.stderr)

    with _terminate_as_interrupt():
        for name in files:
            source = Path(name)
            target = _output_path(args, source, folder_output)
            if target.exists() and not args.force:
                tqdm.write(f"skipped {source}: {target} exists (use --force to overwrite)",
                           file=sys.stderr)
                failures += 1
                continue
            try:
                photo = load_photo(source)
                rect = None
                if args.crop is not None:
                    rect = _crop_rect(args.crop, (photo.height, photo.width), warn)
                size = (args.size[1], args.size[0]) if args.size else None
                whole = (0.0, 0.0, float(photo.height), float(photo.width))
                _, _, shape = export_geometry(rect or whole, args.scale, size)
                pixels = shape[0] * shape[1]
                if pixels > MAX_OUTPUT_PIXELS and not args.force:
                    raise ValueError(
                        f"the output would be {shape[1]} x {shape[0]} = {pixels / 1e6:,.0f} "
                        f"megapixels ({pixels * 3 / 2**30:,.1f} GB as 8-bit RGB; hours to days "
                        f"of rendering): add --force if that is what you want")
                engine = Engine(photo, device=device, precision=args.precision,
                                notify=warn)
                if model is not None:
                    engine.add_model(method, model)
                with tqdm(total=0, unit="tile", desc=source.name, leave=False, file=sys.stderr,
                          disable=args.quiet) as bar:
                    def progress(done: int, total: int, bar=bar) -> None:
                        bar.total = total
                        bar.update(done - bar.n)

                    export_region(engine, target, method, rect=rect, scale=args.scale,
                                  size=size, keep_metadata=not args.no_metadata,
                                  quality=args.quality, progress=progress,
                                  overwrite=args.force, warn=warn)
                if not args.quiet:
                    tqdm.write(f"{source} -> {target}", file=sys.stderr)
            except (ImageLoadError, ImageSaveError, ValueError, OSError, MemoryError) as exc:
                fail(source, exc)
                failures += 1
            except KeyboardInterrupt as exc:
                tqdm.write("interrupted; the file being written was not created",
                           file=sys.stderr)
                return 128 + getattr(exc, "signum", signal.SIGINT)
    if failures:
        print(f"{failures} of {len(args.inputs)} files failed", file=sys.stderr)
    return 1 if failures else 0


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where the program is, so that every temporary file is
    removed on the way out exactly as for Ctrl+C."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def _terminate_as_interrupt():
    def handler(signum, frame):
        raise Terminated(signum)

    wanted = [s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None))
              if s is not None]
    previous = {s: signal.signal(s, handler) for s in wanted}
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


def _crop_rect(crop: tuple[float, float, float, float], size: tuple[int, int], warn
               ) -> tuple[float, float, float, float]:
    """--crop X,Y,W,H as the engine's (y, x, h, w), clipped to the photo with a warning;
    ValueError when it misses the photo."""
    x, y, w, h = crop
    height, width = size
    left, top = max(0.0, x), max(0.0, y)
    right, bottom = min(float(width), x + w), min(float(height), y + h)
    if right <= left or bottom <= top:
        raise ValueError(f"the crop {x:g},{y:g},{w:g},{h:g} (X,Y,W,H) lies outside the photo "
                         f"({width} x {height})")
    if (left, top, right, bottom) != (x, y, x + w, y + h):
        warn(f"the crop {x:g},{y:g},{w:g},{h:g} reaches outside the photo ({width} x "
             f"{height}); using {left:g},{top:g},{right - left:g},{bottom - top:g}")
    return top, left, bottom - top, right - left


def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "upscale":
        return upscale_main(argv[1:])
    if argv and argv[0] == "view":
        argv = argv[1:]
    args = _viewer_parser().parse_args(argv)
    try:
        from ddir_zoom.app import run_viewer  # Qt is imported only when a window is wanted
    except ImportError as exc:
        from ddir_zoom.app.system import platform_problem

        print(platform_problem(always=True) or f"ddir-zoom cannot start its window ({exc})",
              file=sys.stderr)
        return 1

    return run_viewer(args.image, self_test=args.self_test, started=started,
                      threads=args.threads)


if __name__ == "__main__":
    sys.exit(main())
