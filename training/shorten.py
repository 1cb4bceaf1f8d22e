"""Start a shallower model from a trained deeper one: keep the encoders' most useful residual
blocks and refit the conv after them to the deep encoder's own output.

The first-pass student's encoders are most of a cold view's cost on a 2-core CPU (4 residual
blocks of 32 channels encode a 128-pixel tile with its halo in about 57 ms, 2 blocks in about
28 ms), but a model with fewer blocks trained from scratch would need far more steps than a CPU
gives. Here the short model takes the deep one's decoders whole and, per
encoder, its head and the subset of blocks whose refitted output is closest to the deep
encoder's (every subset of that size is tried on calibration crops); the body's last conv is
then refitted by ridge least squares from the kept blocks' output (its 3 x 3 neighbourhoods)
to what the deep body adds to the head's output. Distillation (`train.py --teacher`) then
recovers what it can.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

from ddir_zoom.models import ImplicitSR
from ddir_zoom.models.edsr import EDSREncoder
from training.narrow import ridge

MOST_SUBSETS = 70
"""Block subsets tried per encoder at most (all of them for 4 of 8 blocks); beyond, the first
blocks are kept."""


def can_shorten(model: ImplicitSR, source: ImplicitSR) -> bool:
    """Whether `model` is `source` of the same kind, encoder width and MLPs, with fewer
    residual blocks."""
    mine, theirs = model.encoder_config, source.encoder_config
    return (source.name == model.name and source.hidden == model.hidden
            and mine.get("n_feats", 64) == theirs.get("n_feats", 64)
            and mine.get("res_scale", 1.0) == theirs.get("res_scale", 1.0)
            and source.shared_encoder == model.shared_encoder
            and mine.get("n_resblocks", 16) < theirs.get("n_resblocks", 16))


def _body_input(encoder: EDSREncoder, blocks: list[int], rgb: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """(head output, what blocks `blocks` of `encoder` make of it: the last conv's input)."""
    head = encoder.head((rgb - 0.5) / 0.5)
    x = head
    for index in blocks:
        x = encoder.body[index](x)  # a ResBlock adds into its own output, not into x
    return head, x


def _refit_tail(inputs: list[torch.Tensor], targets: list[torch.Tensor]
                ) -> tuple[torch.Tensor, torch.Tensor, float]:
    """A 3 x 3 conv (weight, bias) from `inputs` to `targets` (each (1, C, h, w)) by the ridge
    least squares of `narrow.ridge`, and its mean squared error."""
    x = torch.cat([F.unfold(i, 3, padding=1)[0].T for i in inputs])  # (N, 9C)
    y = torch.cat([t.flatten(2)[0].T for t in targets])  # (N, C)
    weight, bias = ridge(x, y)
    error = float(((x @ weight.T + bias - y) ** 2).mean())
    channels = y.shape[1]
    return weight.reshape(channels, channels, 3, 3), bias, error


@torch.no_grad()
def shorten_into(model: ImplicitSR, source: ImplicitSR, calibration: list[torch.Tensor]
                 ) -> list[str]:
    """Copy `source` into the shallower `model` (see the module doc), choosing and refitting on
    the RGB `calibration` images (each (1, 3, h, w) in [0, 1]). Returns the tensors set."""
    if not can_shorten(model, source):
        raise ValueError(f"cannot shorten a {source.name} {source.config} into {model.config}")
    copied = []
    for name in model.encoders:
        deep: EDSREncoder = source.encoders[name]
        short: EDSREncoder = model.encoders[name]
        heads, targets = [], []
        for rgb in calibration:
            head, _ = _body_input(deep, [], rgb)
            heads.append(head)
            targets.append(deep.body(head))  # what the body adds to the head
        subsets = list(itertools.islice(
            itertools.combinations(range(deep.n_resblocks), short.n_resblocks), MOST_SUBSETS))
        best = None
        for subset in subsets:
            inputs = [_body_input(deep, list(subset), rgb)[1] for rgb in calibration]
            weight, bias, error = _refit_tail(inputs, targets)
            if best is None or error < best[0]:
                best = (error, subset, weight, bias)
        _, subset, weight, bias = best
        short.head.load_state_dict(deep.head.state_dict())
        for mine, theirs in enumerate(subset):
            short.body[mine].load_state_dict(deep.body[theirs].state_dict())
        tail: nn.Conv2d = short.body[-1]
        tail.weight.copy_(weight)
        tail.bias.copy_(bias)
        copied += [f"encoders.{name}.{k}" for k in short.state_dict()]
    for branch in model.branches:
        state = source.decoders[branch].state_dict()
        model.decoders[branch].load_state_dict(state)
        copied += [f"decoders.{branch}.{k}" for k in state]
    return copied
