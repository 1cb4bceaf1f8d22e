"""Copy a trained model file to where it ships, with what inference needs added to its info.

  python -m training.ship runs/ddir_student32/best.safetensors \\
      resources/weights/ddir_student.safetensors --tone-anchor

The weights and the run's record (data, command, iterations) are kept as they are; `--tone-anchor`
sets `"tone_anchor": true` (`ddir_zoom/models/tone_anchor.py`: the viewer, export and evaluation
then take the model's tone drift out), `--tone-anchor-sigma` the width of its low-pass for this
model, `--tone-anchor-checkerboard` one sample point per pixel instead of two (half the anchor's
cost, `tone_anchor.checkerboard`), and `--train-scales` records the scales it was trained on.
The output is written atomically and refused if it exists, unless `--force`.
`differences(a, b)` says how two model files differ in what a render uses (the weights, the
architecture, the inference settings): a model scored as a scratch copy and then shipped is
recorded under the shipped name only when there are none (`training.report relabel`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from ddir_zoom.models import CheckpointError, ImplicitSR, load_checkpoint, save_checkpoint
from ddir_zoom.models.tone_anchor import check_sigma

ANCHOR_KEYS = ("tone_anchor", "tone_anchor_sigma", "tone_anchor_checkerboard")


def ship(source: str | Path, target: str | Path, tone_anchor: bool = False,
         train_scales: tuple[float, float] | None = None, sigma: float | None = None,
         checkerboard: bool = False, no_tone_anchor: bool = False) -> dict:
    """Write `source`'s model to `target` with the info changes; returns the new info."""
    model, info = load_checkpoint(source, "cpu")
    info = dict(info)
    if no_tone_anchor:
        if tone_anchor or sigma is not None or checkerboard:
            raise ValueError("--no-tone-anchor goes with no other --tone-anchor option")
        info = {k: v for k, v in info.items() if k not in ANCHOR_KEYS}
    if tone_anchor:
        info["tone_anchor"] = True
    if sigma is not None:
        info["tone_anchor_sigma"] = check_sigma(sigma)
    if checkerboard:
        info["tone_anchor_checkerboard"] = True
    if train_scales is not None:
        info["train_scales"] = list(train_scales)
    save_checkpoint(model, target, info)
    return info


def anchor_differences(a: ImplicitSR, b: ImplicitSR) -> list[str]:
    """How two loaded models' inference settings (`ANCHOR_KEYS`) differ; empty if not."""
    return [f"{key}: {getattr(a, key)!r} != {getattr(b, key)!r}"
            for key in ANCHOR_KEYS if getattr(a, key) != getattr(b, key)]


def differences(a: str | Path, b: str | Path) -> list[str]:
    """What differs between two model files in what a render uses, each loaded as the viewer
    loads it (`load_checkpoint`: shapes checked before any tensor is read): the architecture
    config, the inference settings (`ANCHOR_KEYS`), each weight's values. Empty when they render
    the same pixels; the run's record (`info`'s other keys) may differ."""
    (model_a, _), (model_b, _) = load_checkpoint(a, "cpu"), load_checkpoint(b, "cpu")
    if model_a.config != model_b.config:
        return [f"config: {model_a.config} != {model_b.config}"]
    found = anchor_differences(model_a, model_b)
    weights_b = model_b.state_dict()
    found += [f"tensor {name}: differs" for name, tensor in model_a.state_dict().items()
              if not torch.equal(tensor, weights_b[name])]
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.ship", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="the trained model file (a run's best.safetensors)")
    parser.add_argument("target", help="the model file to write")
    parser.add_argument("--tone-anchor", action="store_true",
                        help="render it with the tone anchor")
    parser.add_argument("--tone-anchor-sigma", type=float,
                        help="the anchor's low-pass in LR pixels (default: "
                        "ddir_zoom.models.tone_anchor.SIGMA)")
    parser.add_argument("--tone-anchor-checkerboard", action="store_true",
                        help="the anchor samples one point per pixel, in a checkerboard (half "
                        "the cost; measure its tones with training.evaluate --tone)")
    parser.add_argument("--no-tone-anchor", action="store_true",
                        help="take the tone anchor and its settings out")
    parser.add_argument("--train-scales", help="MIN,MAX: the scales it was trained on")
    parser.add_argument("--force", action="store_true", help="replace an existing target")
    args = parser.parse_args(argv)
    if Path(args.target).exists() and not args.force:
        print(f"error: {args.target} exists (--force replaces it)", file=sys.stderr)
        return 1
    scales = None
    if args.train_scales:
        try:
            low, high = (float(v) for v in args.train_scales.split(","))
        except ValueError:
            parser.error("--train-scales takes MIN,MAX, e.g. 1.5,8")
        scales = (low, high)
    try:
        info = ship(args.source, args.target, args.tone_anchor, scales, args.tone_anchor_sigma,
                    args.tone_anchor_checkerboard, args.no_tone_anchor)
    except (CheckpointError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.target} (tone anchor {'on' if info.get('tone_anchor') else 'off'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
