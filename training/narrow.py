"""Start a narrower model from a trained wider one: keep each MLP's most important hidden units
and refit the layers after them to the wide model's own outputs.

A first-pass student with 32-wide MLPs decodes about twice as fast as one with 64-wide MLPs
(`benchmarks/decode.py`), but trained from a random decoder it would need far more steps than
a CPU gives. The narrow model takes the wide one's encoders whole (same size). In each decoder,
unit j of hidden layer l is scored ||W_l[j, :]|| * ||W_{l+1}[:, j]|| (the size of what it reads
times the size of what it writes) and the best are kept. Dropping units alone loses much (on the
bundled photo the student's 64 -> 32 output fell to 12 dB PSNR against the wide one), so every
layer after the first is refitted by ridge least squares: from the narrow activations to the
wide layer's pre-activations of the kept units (to the wide output for the last layer), over the
MLP inputs the wide model sees while decoding calibration images. Distillation
(`train.py --teacher`) then recovers what it can.
"""

from __future__ import annotations

import torch

from ddir_zoom.imaging.io import load_photo
from ddir_zoom.models import ImplicitSR
from ddir_zoom.models.implicit import MLP
from ddir_zoom.resources import sample_photo

RIDGE = 1e-3
"""Relative ridge term of the refits: a fraction of the mean diagonal of X^T X."""


def can_narrow(model: ImplicitSR, source: ImplicitSR) -> bool:
    """Whether `model` is `source` of the same kind and encoders, with MLPs of the same depth
    and no wider in any layer."""
    return (source.name == model.name and source.encoder_config == model.encoder_config
            and source.shared_encoder == model.shared_encoder
            and len(source.hidden) == len(model.hidden)
            and all(a <= b for a, b in zip(model.hidden, source.hidden, strict=True)))


def calibration_crops(size: int = 128) -> list[torch.Tensor]:
    """Four corner crops of the bundled sample photo, (1, 3, size, size) in [0, 1]: the
    images a narrowed model is refitted on. A real photo, not training data, so that no
    dataset is needed to start a run."""
    pixels = torch.from_numpy(load_photo(sample_photo()).rgb).permute(2, 0, 1)
    h, w = pixels.shape[-2:]
    corners = [(0, 0), (0, w - size), (h - size, 0), (h - size, w - size)]
    return [pixels[None, :, y:y + size, x:x + size].contiguous() for y, x in corners]


def kept_units(weight_in: torch.Tensor, weight_out: torch.Tensor, count: int) -> torch.Tensor:
    """Indices (sorted) of the `count` hidden units with the largest ||row in|| * ||column out||."""
    score = weight_in.norm(dim=1) * weight_out.norm(dim=0)
    return score.topk(count).indices.sort().values


def ridge(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(W, b) minimising ||x W^T + b - y||^2 plus a small ridge on W, in float64."""
    x = torch.cat([x.double(), x.new_ones(x.shape[0], 1, dtype=torch.float64)], 1)
    gram = x.T @ x
    ridge = RIDGE * gram.diagonal()[:-1].mean().clamp_min(1e-12)
    gram[:-1, :-1] += ridge * torch.eye(gram.shape[0] - 1, dtype=torch.float64)
    solution = torch.linalg.solve(gram, x.T @ y.double())  # (in + 1, out)
    return solution[:-1].T.float(), solution[-1].float()


@torch.no_grad()
def narrow_mlp(narrow: MLP, wide: MLP, inputs: torch.Tensor | None) -> None:
    """Set `narrow` from `wide` (see the module doc); with `inputs` (N, in) the layers after
    the first are refitted on them, without they are only cut."""
    src, dst = wide.linears, narrow.linears
    columns = torch.arange(src[0].weight.shape[1])  # every input of the first layer
    wide_x = narrow_x = inputs
    for i, (a, b) in enumerate(zip(src, dst, strict=True)):
        last = i + 1 == len(src)
        keep = (torch.arange(a.weight.shape[0]) if last
                else kept_units(a.weight[:, columns], src[i + 1].weight, b.weight.shape[0]))
        if inputs is None or i == 0:
            b.weight.copy_(a.weight[keep][:, columns])
            b.bias.copy_(a.bias[keep])
        else:
            target = (wide_x @ a.weight.T + a.bias)[:, keep]
            weight, bias = ridge(narrow_x, target)
            b.weight.copy_(weight)
            b.bias.copy_(bias)
        if inputs is not None and not last:
            wide_x = torch.relu(wide_x @ a.weight.T + a.bias)
            narrow_x = torch.relu(narrow_x @ b.weight.T + b.bias)
        columns = keep


def mlp_inputs(model: ImplicitSR, images: list[torch.Tensor], scales: tuple[float, ...],
               queries: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Per branch, the MLP inputs (N, in) that `model`'s reference path feeds its decoders
    while decoding `queries` random points of each image (B=1, 3, h, w) at each scale."""
    captured: dict[str, list[torch.Tensor]] = {b: [] for b in model.branches}
    hooks = [model.decoders[b].mlp.register_forward_pre_hook(
        lambda _m, args, b=b: captured[b].append(args[0].reshape(-1, args[0].shape[-1])))
        for b in model.branches]
    generator = torch.Generator().manual_seed(seed)
    try:
        with torch.no_grad():
            for image in images:
                features = model.encode(image)
                appearance = model.appearance_embedding(features)
                h, w = image.shape[-2:]
                for scale in scales:
                    coords = torch.rand(1, queries, 2, generator=generator, dtype=torch.float64)
                    coords = coords * coords.new_tensor([h, w])
                    cells = torch.full((1, queries, 2), 1.0 / scale)
                    model.decode_plain(features, coords, cells, appearance)
    finally:
        for hook in hooks:
            hook.remove()
    return {b: torch.cat(v) for b, v in captured.items()}


@torch.no_grad()
def narrow_into(model: ImplicitSR, source: ImplicitSR,
                calibration: list[torch.Tensor] | None = None,
                scales: tuple[float, ...] = (1.5, 2.4, 4.0, 8.0), queries: int = 8192
                ) -> list[str]:
    """Copy `source` into the narrower `model` (see the module doc), refitted on the RGB
    `calibration` images (each (1, 3, h, w) in [0, 1]) when given. Returns the tensors set."""
    if not can_narrow(model, source):
        raise ValueError(f"cannot narrow a {source.name} {source.config} into {model.config}")
    inputs = (mlp_inputs(source, calibration, scales, queries) if calibration
              else dict.fromkeys(model.branches))
    copied = []
    for name in model.encoders:
        state = source.encoders[name].state_dict()
        model.encoders[name].load_state_dict(state)
        copied += [f"encoders.{name}.{k}" for k in state]
    for branch in model.branches:
        # Each decoder is refitted on the wide model's inputs, DDIR's SR decoder on the wide
        # deformation: the wide model is what the narrow one imitates.
        narrow_mlp(model.decoders[branch].mlp, source.decoders[branch].mlp, inputs[branch])
        copied += [f"decoders.{branch}.{k}" for k in model.decoders[branch].state_dict()]
    return copied
