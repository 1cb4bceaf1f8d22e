"""Blend two models' weights: `(1 - weight) * A + weight * B`, tensor by tensor.

  python -m training.ship runs/ddir_paper_wide/last.safetensors wide.safetensors \\
      --tone-anchor --tone-anchor-sigma 1.25        # anchored as the shipped DDIR
  python -m training.blend resources/weights/ddir_paper.safetensors wide.safetensors \\
      blend05.safetensors --weight 0.5

Not in the paper. When B was fine-tuned from A (same architecture, same start), the straight
line between their weights stays in one basin of the loss, and a point on it often keeps what
each end does well: A's behaviour where the fine-tuning cost it something, B's gain where B was
trained to gain ("WiSE-FT", Wortsman et al., Robust fine-tuning of zero-shot models, CVPR 2022).
Here A is a DDIR trained on the standard degradation and B the same model fine-tuned on wider
cameras (`train.py --wide-degradation`): B gains on soft lenses and loses a little on sharp
ones, and the blend is measured (`training.camera_sweep`, `training.evaluate`) to see how much
of each it keeps. A blend is a new model: it ships only when it is scored like any other
(README, Quality: the blends of 0.2-0.5 measured so far were not shipped).

The two files must hold the same architecture and the same inference settings (tone anchor);
the blend keeps them and records both files' runs and the weight in its info.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import torch

from ddir_zoom.models import CheckpointError, ImplicitSR, load_checkpoint, save_checkpoint
from training.ship import anchor_differences

RUN_KEYS = ("data", "command", "resumed", "init", "iterations", "wall_time_s", "ema", "seed",
            "machine")


def blend_models(a: ImplicitSR, b: ImplicitSR, weight: float) -> ImplicitSR:
    """A new model with `(1 - weight) * a + weight * b` for every floating tensor; `a` and
    `b` are left as they are. Integer buffers (none today) must be equal in both."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"the blend's weight must be in [0, 1], not {weight}")
    if a.config != b.config:
        raise ValueError(f"the models differ in architecture: {a.config} != {b.config}")
    state_b = b.state_dict()
    blended = {}
    for name, tensor_a in a.state_dict().items():
        tensor_b = state_b[name]
        if tensor_a.is_floating_point():
            # lerp in float64 so that weight 0 and 1 give A and B exactly.
            blended[name] = torch.lerp(tensor_a.double(), tensor_b.double(),
                                       weight).to(tensor_a.dtype)
        elif torch.equal(tensor_a, tensor_b):
            blended[name] = tensor_a.clone()
        else:
            raise ValueError(f"tensor {name}: integer values differ, they cannot be blended")
    model = copy.deepcopy(a)
    model.load_state_dict(blended)
    return model.eval()


def blend(a_path: str | Path, b_path: str | Path, target: str | Path, weight: float) -> dict:
    """Write the blend of the model files `a_path` and `b_path` to `target` (atomically);
    returns its info."""
    model_a, info_a = load_checkpoint(a_path, "cpu")
    model_b, info_b = load_checkpoint(b_path, "cpu")
    model = blend_models(model_a, model_b, weight)  # refuses other architectures first
    if found := anchor_differences(model_a, model_b):
        raise ValueError(f"the models render differently ({'; '.join(found)}); ship both "
                         "with the same settings")
    info = {key: value for key, value in info_a.items() if key not in RUN_KEYS}
    info["blend"] = {
        "weight": weight,
        "a": {"file": Path(a_path).name, **{k: v for k, v in info_a.items() if k in RUN_KEYS}},
        "b": {"file": Path(b_path).name, **{k: v for k, v in info_b.items() if k in RUN_KEYS}},
    }
    save_checkpoint(model, target, info)
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.blend", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a", help="the first model file (weight 0 gives it back)")
    parser.add_argument("b", help="the second model file (weight 1 gives it back)")
    parser.add_argument("target", help="the model file to write")
    parser.add_argument("--weight", type=float, required=True,
                        help="B's share in [0, 1]: (1 - weight) * A + weight * B")
    parser.add_argument("--force", action="store_true", help="replace an existing target")
    args = parser.parse_args(argv)
    if Path(args.target).exists() and not args.force:
        print(f"error: {args.target} exists (--force replaces it)", file=sys.stderr)
        return 1
    try:
        blend(args.a, args.b, args.target, args.weight)
    except (CheckpointError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.target}: {1 - args.weight:g} x {Path(args.a).name} + "
          f"{args.weight:g} x {Path(args.b).name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
