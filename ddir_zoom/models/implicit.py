"""The local implicit decoder of LIIF (Chen et al. 2021) that DDIR uses for both of its branches.

Coordinates. A query is a point (y, x) in LR pixel units: the LR image spans [0, h) x [0, w) and
latent (i, j) sits at the centre of LR pixel (i, j), at (i + 0.5, j + 0.5). Output pixel (r, c) of
an upscale by s queries ((r + 0.5) / s, (c + 0.5) / s) with the cell (1 / s, 1 / s): LIIF's
pixel-centre convention. The MLP sees relative coordinates and cells in LIIF's units, where
the image spans [-1, 1], that is 2 / h per LR row: a relative offset of d LR pixels is fed as 2d.

Each query is decoded from its 4 nearest latents (feature unfolding: each latent is the 3x3
neighbourhood of the feature map, zero outside the image) and the 4 predictions are blended with
weights S_i / S, S_i the area of the rectangle between the query and the diagonally opposite
latent.

Two exact ways to evaluate the decoder:
- plain (`decode_plain`): gather the 9*C unfolded latent of each neighbour and run the MLP, as the
  LIIF code does. The reference.
- fast (`decode`): the first MLP layer is linear in its input, so its feature part
  W_feat @ unfold(F) is a 3x3 convolution of F, computed once per LR position (`project`) and
  reused by every query that touches it. A query then only adds its coordinate, cell and extra
  terms and runs the remaining layers. The gather reads D values per neighbour instead of 9*C.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

NEIGHBOUR_OFFSETS = ((-1, -1), (-1, 1), (1, -1), (1, 1))
"""(dy, dx) of the 4 ensemble neighbours: top-left, top-right, bottom-left, bottom-right."""
_EPS_SHIFT = 1e-6  # LR pixels; breaks ties when a query sits exactly between two latents.
_AREA_EPS = 1e-9


class MLP(nn.Module):
    """Linear-ReLU stack: in_dim -> hidden[0] -> ... -> hidden[-1] -> out_dim."""

    def __init__(self, in_dim: int, hidden: Sequence[int], out_dim: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        last = in_dim
        for width in hidden:
            layers += [nn.Linear(last, width), nn.ReLU(inplace=True)]
            last = width
        layers.append(nn.Linear(last, out_dim))
        self.layers = nn.Sequential(*layers)

    @property
    def linears(self) -> list[nn.Linear]:
        return [m for m in self.layers if isinstance(m, nn.Linear)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


FUSED_MAX_WIDTH = 128
"""Hidden layers up to this wide run, on a CPU, as one oneDNN product with the bias and the
ReLU fused into it (`torch.ops.mkldnn._linear_pointwise`, what torch.compile's CPU backend
emits), instead of an addmm that first copies the bias into its output and a ReLU pass
after it. On the 2-core AMD CPU, one thread (benchmarks/fused_linear.py, three runs): a 64-wide
layer 1.16-1.41x faster, a compact DDIR decoding chunk 1.06-1.12x; 256-wide layers 0.96-1.11x,
no clear gain, so they keep addmm. Inference only (no autograd); same values up to rounding
(tested, and the fast path's tests against the plain one hold it)."""


def _fused_available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn,
                                                            "_linear_pointwise")


_FUSED = _fused_available()


def _linear_relu(x: torch.Tensor, layer: nn.Linear) -> torch.Tensor:
    """relu(x @ W^T + b) for a hidden layer of the fast path (see FUSED_MAX_WIDTH)."""
    weight, bias = layer.weight, layer.bias
    if (_FUSED and x.device.type == "cpu" and x.dtype == torch.float32
            and weight.shape[0] <= FUSED_MAX_WIDTH
            and not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad))):
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "relu", [None], "")
    return torch.relu_(torch.addmm(bias, x, weight.t()))


@dataclass
class Neighbours:
    """The local ensemble of a batch of queries; leading dimension 4 follows NEIGHBOUR_OFFSETS.

    index_y, index_x: (4, B, N) LR row and column of each neighbour latent (whole-image indices).
    rel: (4, B, N, 2) query minus latent centre, in LIIF units (2 per LR pixel).
    weights: (4, B, N) blending weights S_i / S, summing to 1 over the 4 neighbours.
    axes: for the queries of a grid (`grid_ensemble`, B = 1), the rows (4, R) and columns
    (4, C) that index_y and index_x repeat; they make `flat_index` cheap.
    """

    index_y: torch.Tensor
    index_x: torch.Tensor
    rel: torch.Tensor
    weights: torch.Tensor
    axes: tuple[torch.Tensor, torch.Tensor] | None = None
    _flat: dict = field(default_factory=dict, repr=False)

    def flat_index(self, origin: tuple[int, int], rows: int, cols: int) -> torch.Tensor:
        """(4 * B * N,) index of each neighbour in a (B, rows, cols) grid of latents whose
        [:, 0, 0] is LR pixel `origin`; computed once per grid placement (DDIR's two decoders
        share it). IndexError when a neighbour lies outside that grid."""
        key = (origin, rows, cols)
        flat = self._flat.get(key)
        if flat is not None:
            return flat
        if self.axes is not None:
            iy, ix = self.axes[0] - origin[0], self.axes[1] - origin[1]
        else:
            iy, ix = self.index_y - origin[0], self.index_x - origin[1]
        if bool((iy.min() < 0) | (iy.max() >= rows) | (ix.min() < 0) | (ix.max() >= cols)):
            raise IndexError("a query needs latents outside the given LatentGrid")
        if self.axes is not None:
            # A grid's index is its row's index times the width plus its column's: made from
            # the axes, not from 4 * N pairs.
            flat = (iy.unsqueeze(2) * cols + ix.unsqueeze(1)).reshape(-1)
        else:
            batch = iy.shape[1]
            batch_offset = torch.arange(batch, device=iy.device).view(1, batch, 1) * rows
            flat = ((batch_offset + iy) * cols + ix).reshape(-1)
        self._flat[key] = flat
        return flat


def _blend_weights(rel_y: torch.Tensor, rel_x: torch.Tensor) -> torch.Tensor:
    """S_i / S from the relative coordinates (4, ...; broadcast together): each prediction is
    weighted by the area towards the diagonally opposite latent."""
    area = (rel_y * rel_x).abs() + _AREA_EPS
    return area.flip(0) / area.sum(0, keepdim=True)


def local_ensemble(
    coords: torch.Tensor, image_hw: tuple[int, int], dtype: torch.dtype = torch.float32
) -> Neighbours:
    """Neighbours of queries `coords` (B, N, 2) as (y, x) in LR pixel units (see module doc).

    Queries outside the image take the nearest latents inside it, as LIIF's clamping does. The
    geometry is computed in the coordinates' own precision (float64 keeps large images exact)
    and returned in `dtype`.
    """
    h, w = image_hw
    offsets = coords.new_tensor(NEIGHBOUR_OFFSETS).view(4, 1, 1, 2)
    shifted = coords.unsqueeze(0) + offsets * 0.5 + _EPS_SHIFT
    index = torch.floor(shifted).long()
    index_y = index[..., 0].clamp_(0, h - 1)
    index_x = index[..., 1].clamp_(0, w - 1)
    centre = torch.stack([index_y, index_x], dim=-1).to(coords.dtype) + 0.5
    rel = 2.0 * (coords.unsqueeze(0) - centre)
    weights = _blend_weights(rel[..., 0], rel[..., 1])
    return Neighbours(index_y, index_x, rel.to(dtype), weights.to(dtype))


def _axis_neighbours(values: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Index and relative coordinate (2, n) of the neighbours below and above along one
    axis: what `local_ensemble` computes for that axis, in the same operations."""
    offsets = values.new_tensor([-1.0, 1.0]).view(2, 1)
    index = torch.floor(values + offsets * 0.5 + _EPS_SHIFT).long().clamp_(0, size - 1)
    rel = 2.0 * (values - (index.to(values.dtype) + 0.5))
    return index, rel


_Y_OF = [0, 0, 1, 1]  # per NEIGHBOUR_OFFSETS entry: its y offset, -1 or +1, as 0 or 1
_X_OF = [0, 1, 0, 1]  # and its x offset


def grid_ensemble(
    ys: torch.Tensor, xs: torch.Tensor, image_hw: tuple[int, int],
    dtype: torch.dtype = torch.float32
) -> Neighbours:
    """`local_ensemble` of the grid of queries (ys[r], xs[c]), row-major, B = 1: equal to it
    bit for bit, at a fraction of the cost (for a chunk of a viewport tile it was a quarter of
    the student's decode). A neighbour's row depends on its query's row alone and its column
    on the column alone, so each is found once per row and column; the blending weights are
    then formed per query as `local_ensemble` forms them."""
    h, w = image_hw
    iy, ry = _axis_neighbours(ys, h)
    ix, rx = _axis_neighbours(xs, w)
    iy, ry, ix, rx = iy[_Y_OF], ry[_Y_OF], ix[_X_OF], rx[_X_OF]
    ry, rx = ry.unsqueeze(2), rx.unsqueeze(1)  # (4, R, 1) and (4, 1, C)
    weights = _blend_weights(ry, rx).reshape(4, 1, -1).to(dtype)
    shape = (4, len(ys), len(xs))
    rel = torch.stack([ry.to(dtype).expand(shape), rx.to(dtype).expand(shape)], dim=-1)
    return Neighbours(iy.unsqueeze(2).expand(shape).reshape(4, 1, -1),
                      ix.unsqueeze(1).expand(shape).reshape(4, 1, -1),
                      rel.reshape(4, 1, -1, 2), weights, axes=(iy, ix))


@dataclass
class LatentGrid:
    """Per-position first-layer projections of one decoder over a rectangle of the LR grid.

    values: (B, rows, cols, D), channels last, D the decoder's first hidden width.
    origin: (y0, x0), the LR pixel of values[:, 0, 0]. The whole image has origin (0, 0); the
    engine decodes from tiles with an offset origin.
    """

    values: torch.Tensor
    origin: tuple[int, int] = (0, 0)


class LocalImplicitDecoder(nn.Module):
    """f_theta over [unfolded latent (9*C), relative coord (2), cell (2), extra (E)] -> out_dim,
    blended over the 4-neighbour local ensemble."""

    def __init__(self, feat_dim: int, extra_dim: int, hidden: Sequence[int], out_dim: int = 3):
        super().__init__()
        if not hidden:
            raise ValueError("the decoder needs at least one hidden layer")
        self.feat_dim = feat_dim
        self.extra_dim = extra_dim
        self.hidden = list(hidden)
        self.out_dim = out_dim
        self.mlp = MLP(9 * feat_dim + 4 + extra_dim, hidden, out_dim)
        # float32, or the dtype of the hidden layers in fast decoding (`models.precision`).
        self.hidden_dtype = torch.float32

    # --- weight views of the first layer, by input block -------------------------------------
    def _first_weights(self) -> tuple[torch.Tensor, ...]:
        first = self.mlp.linears[0]
        k = 9 * self.feat_dim
        weight = first.weight
        return weight[:, :k], weight[:, k:k + 2], weight[:, k + 2:k + 4], weight[:, k + 4:]

    def project(self, features: torch.Tensor) -> torch.Tensor:
        """W_feat @ unfold(features) at every LR position: (B, C, h, w) -> (B, h, w, D).

        Zero padding stands for the zeros feature unfolding sees outside the image; the engine
        crops the outer ring of a tile, where the padding would not be the image border.
        """
        w_feat = self._first_weights()[0]
        kernel = w_feat.reshape(w_feat.shape[0], self.feat_dim, 3, 3)
        projected = F.conv2d(features, kernel, padding=1)
        return projected.permute(0, 2, 3, 1).contiguous()

    def decode(
        self,
        grid: LatentGrid,
        nb: Neighbours,
        cells: torch.Tensor,
        extra: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Fast path. cells (B, N, 2) in LR pixels; extra (B, N, E) per query, or (B, 1, E) per
        image (DDIR's appearance embedding). Returns the blended prediction (B, N, out)."""
        values = grid.values
        batch, rows, cols, width = values.shape
        n = cells.shape[1]
        flat_index = nb.flat_index(grid.origin, rows, cols)
        flat = values.reshape(-1, width)  # a view when the grid is contiguous
        hidden = flat.index_select(0, flat_index)

        # The rest of the first layer, added in place onto the gathered projections: the
        # relative coordinate of each neighbour (a K=2 product), then the terms its 4
        # neighbours share: bias, cell and extra (per query, or per image as for DDIR's
        # appearance embedding).
        _, w_rel, w_cell, w_extra = self._first_weights()
        hidden.addmm_(nb.rel.reshape(-1, 2), w_rel.t())
        bias = self.mlp.linears[0].bias
        if self.extra_dim:
            if extra is None:
                raise ValueError("this decoder needs its extra input")
            if extra.shape[1] == 1:
                per_image = bias + extra[:, 0] @ w_extra.t()  # (B, D)
                shared = torch.baddbmm(per_image.unsqueeze(1), cells, w_cell.t().expand(
                    batch, 2, width), alpha=2.0)
            else:
                inputs = torch.cat([2.0 * cells, extra], -1).reshape(-1, 2 + self.extra_dim)
                shared = torch.addmm(bias, inputs, torch.cat([w_cell, w_extra], 1).t())
        else:
            shared = torch.addmm(bias, cells.reshape(-1, 2), w_cell.t(), alpha=2.0)
        hidden.view(4, batch, n, width).add_(shared.view(1, batch, n, width))
        x = torch.relu_(hidden)
        linears = self.mlp.linears
        if self.hidden_dtype != torch.float32 and len(linears) > 2:
            # The named approximation of `models.precision`: hidden layers in bfloat16.
            dtype = self.hidden_dtype
            x = x.to(dtype)
            for layer in linears[1:-1]:
                x = torch.relu_(torch.addmm(layer.bias.to(dtype), x, layer.weight.t().to(dtype)))
            x = x.float()
        else:
            for layer in linears[1:-1]:
                x = _linear_relu(x, layer)
        # The last layer is affine and the ensemble weights sum to 1, so the 4 predictions
        # blended, sum_i w_i (A x_i + b), equal A (sum_i w_i x_i) + b up to rounding: blend the
        # hidden activations first and apply the last layer once per query, not per neighbour
        # (a chunk of the student decodes about 8% faster).
        x = x.view(4, batch * n, -1)
        weights = nb.weights.reshape(4, batch * n, 1)
        blended = x[0] * weights[0]
        for k in range(1, 4):
            blended.addcmul_(x[k], weights[k])
        last = linears[-1]
        return torch.addmm(last.bias, blended, last.weight.t()).view(batch, n, self.out_dim)

    def decode_plain(
        self,
        features: torch.Tensor,
        nb: Neighbours,
        cells: torch.Tensor,
        extra: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Reference path over whole-image features (B, C, h, w); same contract as `decode`:
        the MLP run whole for each neighbour, then the 4 predictions blended.

        Gathers each neighbour's 3x3 neighbourhood per query rather than unfolding the whole
        feature map, so memory grows with the number of queries, not 9x the image.
        """
        batch, channels, h, w = features.shape
        n = cells.shape[1]
        padded = F.pad(features, (1, 1, 1, 1)).permute(0, 2, 3, 1).reshape(-1, channels)
        batch_offset = torch.arange(batch, device=features.device).view(batch, 1) * (h + 2)
        rel_cell = 2.0 * cells
        if self.extra_dim:
            if extra is None:
                raise ValueError("this decoder needs its extra input")
            extra = extra.expand(batch, n, self.extra_dim)
        preds = []
        for k in range(4):
            taps = []
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    row = batch_offset + nb.index_y[k] + 1 + dy
                    taps.append(padded[row * (w + 2) + nb.index_x[k] + 1 + dx])
            # Unfold order: channel-major, then the 3x3 position (as F.unfold).
            latent = torch.stack(taps, dim=-1).reshape(batch, n, channels * 9)
            parts = [latent, nb.rel[k], rel_cell] + ([extra] if self.extra_dim else [])
            preds.append(self.mlp(torch.cat(parts, dim=-1)))
        return (torch.stack(preds) * nb.weights.unsqueeze(-1)).sum(0)

    # --- cost model -----------------------------------------------------------------------------
    def flops_per_query(self, fast: bool) -> int:
        """FLOPs (2 x multiply-adds) of one query: 4 neighbour evaluations, blended."""
        dims = [9 * self.feat_dim + 4 + self.extra_dim, *self.hidden, self.out_dim]
        if not fast:
            return 2 * 4 * sum(a * b for a, b in itertools.pairwise(dims))
        # The first layer's feature part is done by `project`; cell and extra terms are shared
        # by the 4 neighbours; the hidden activations are blended (4 x width) before the last
        # layer, which runs once.
        hidden = sum(a * b for a, b in itertools.pairwise(self.hidden))
        shared = (2 + self.extra_dim) * self.hidden[0]
        last = 4 * self.hidden[-1] + self.hidden[-1] * self.out_dim
        return 2 * (4 * (hidden + 2 * self.hidden[0]) + shared + last)

    def flops_per_projection(self) -> int:
        """FLOPs of `project` at one LR position."""
        return 2 * 9 * self.feat_dim * self.hidden[0]
