"""Start a DDIR whose branches share one encoder from a trained DDIR with two.

The first-pass student's encoders were a third of a cold view's cost on a 2-core CPU: its two
encoders of 2 blocks x 32 channels encode a 128-pixel tile with its halo in about 29 ms, one
shared encoder in about 15 ms (`benchmarks/encode.py --shared`). The shared model keeps the
SR encoder (whose mean is the appearance embedding) and both decoders. The deformation
decoder read the deformation encoder's features F_d only through its first layer's feature
part, W_feat @ unfold(F_d), a linear map of the 3 x 3 neighbourhood; that part is refitted by
ridge least squares from the neighbourhoods of F_sr to what it gave on calibration images
(`narrow.ridge`), and the fit's constant joins the layer's bias. Distillation
(`train.py --teacher`) then recovers what it can.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ddir_zoom.models import ImplicitSR
from training.narrow import ridge


def can_share(model: ImplicitSR, source: ImplicitSR) -> bool:
    """Whether `model` is `source` (of a kind with several branches, each its own encoder) with
    one shared encoder and otherwise the same sizes."""
    return (source.name == model.name and len(model.branches) > 1
            and model.shared_encoder and not source.shared_encoder
            and source.encoder_config == model.encoder_config and source.hidden == model.hidden)


def _unfolded(features: torch.Tensor) -> torch.Tensor:
    """(1, C, h, w) -> (h * w, 9C): each position's 3 x 3 neighbourhood, zero outside, in the
    order of the decoder's first-layer columns (`LocalImplicitDecoder.project`)."""
    return F.unfold(features, 3, padding=1)[0].T


@torch.no_grad()
def share_into(model: ImplicitSR, source: ImplicitSR, calibration: list[torch.Tensor]
               ) -> list[str]:
    """Copy `source` into the shared-encoder `model` (see the module doc), refitting on the
    RGB `calibration` images (each (1, 3, h, w) in [0, 1]). Returns the tensors set."""
    if not can_share(model, source):
        raise ValueError(f"cannot share the encoders of a {source.name} {source.config} in "
                         f"{model.config}")
    kept = model.feature_of[model.branches[0]]
    copied = []
    state = source.encoders[kept].state_dict()
    model.encoders[kept].load_state_dict(state)
    copied += [f"encoders.{kept}.{k}" for k in state]
    for branch in model.branches:
        decoder = model.decoders[branch]
        decoder.load_state_dict(source.decoders[branch].state_dict())
        copied += [f"decoders.{branch}.{k}" for k in decoder.state_dict()]
        if branch == kept:
            continue
        first = decoder.mlp.linears[0]
        k = 9 * decoder.feat_dim
        inputs, targets = [], []
        for rgb in calibration:
            features = source.encode(rgb)
            inputs.append(_unfolded(features[kept]))
            targets.append(_unfolded(features[branch]) @ first.weight[:, :k].T)
        weight, bias = ridge(torch.cat(inputs), torch.cat(targets))
        first.weight[:, :k] = weight
        first.bias += bias
    return copied
