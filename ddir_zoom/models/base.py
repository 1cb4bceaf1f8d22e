"""The interface every arbitrary-scale model in ddir-zoom offers: encode once, query anywhere.

    features = model.encode(lr)                # per branch: (B, C, h, w)
    appearance = model.appearance_embedding(features)
    grids = model.project(features)            # per branch: first-layer projections
    rgb = model.query(grids, coords, cells, (h, w), appearance)
    rgb = model.query_grid(grids, ys, xs, cell, (h, w), appearance)  # a grid of points

`coords` are (y, x) in LR pixel units and `cells` the size of one output pixel in LR pixels (see
`implicit`). `query` returns RGB in [0, 1] (not clamped) and works in chunks, on whatever device
the model and tensors live on. `decode` / `decode_plain` work in the normalised range of the
paper, (x - 0.5) / 0.5, and are what training and the exactness tests use.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ddir_zoom.models.edsr import EDSREncoder
from ddir_zoom.models.implicit import LatentGrid, Neighbours, grid_ensemble, local_ensemble
from ddir_zoom.models.precision import DTYPES
from ddir_zoom.parallel import even_pieces, run_pieces, workers

CHUNK_ELEMENTS = 2**18
"""Queries per chunk x widest MLP layer: 1024 queries for 256-wide MLPs, 4096 for 64-wide ones,
the fastest measured on a 2-core CPU (benchmarks/decode.py, and 128x128 viewport tiles); twice
or four times larger chunks fall out of cache and were up to twice as slow."""


class ImplicitSR(nn.Module):
    """Base of LIIF and DDIR. Subclasses define `branches`, the encoders and decoders, and
    `_decode` (fast) / `_decode_plain` (reference)."""

    name: str = ""
    branches: tuple[str, ...] = ()
    has_appearance_embedding: bool = False

    def __init__(self, encoder: dict[str, Any], hidden: list[int],
                 shared_encoder: bool = False) -> None:
        super().__init__()
        self.encoder_config = dict(encoder)
        self.hidden = list(hidden)
        # Which encoder's features each branch's decoder reads. The paper gives each branch its
        # own; a shared encoder (one for every branch, named after the last, "sr", whose
        # features the appearance embedding averages) encodes a tile at half the cost, what
        # the viewer's first pass wants (see models.registry, the `student` preset).
        self.shared_encoder = bool(shared_encoder) and len(self.branches) > 1
        self.feature_of = {b: self.branches[-1] if self.shared_encoder else b
                           for b in self.branches}
        self.encoders = nn.ModuleDict({name: EDSREncoder(**encoder)
                                       for name in dict.fromkeys(self.feature_of.values())})
        self.decoders = nn.ModuleDict()
        self.channels_last = False
        self.tone_anchor = False  # see models.tone_anchor; set from the model file's info
        self.tone_anchor_sigma: float | None = None  # and its low-pass, None for the default
        self.tone_anchor_checkerboard = False  # and one sample point per pixel, in turn

    @property
    def precision(self) -> str:
        """'float32' (exact) or 'bfloat16' (the named approximation of `models.precision`)."""
        dtype = next(iter(self.decoders.values())).hidden_dtype
        return "bfloat16" if dtype == torch.bfloat16 else "float32"

    def set_precision(self, precision: str) -> ImplicitSR:
        """Decode with `precision` (see `models.precision`; the caller checks the device has
        native bfloat16 with `precision.resolve`). The reference path stays float32."""
        if precision not in DTYPES:
            raise ValueError(f"unknown precision {precision!r}")
        for decoder in self.decoders.values():
            decoder.hidden_dtype = DTYPES[precision]
        return self

    def use_channels_last(self) -> ImplicitSR:
        """Run the encoders in channels_last layout: 1.4-2.3x faster on CPUs (oneDNN) and
        tensor cores; results equal the default layout up to float rounding."""
        self.encoders.to(memory_format=torch.channels_last)
        self.channels_last = True
        return self

    # --- description -----------------------------------------------------------------------
    @property
    def config(self) -> dict[str, Any]:
        """Everything needed to rebuild this architecture (stored in checkpoints)."""
        config = {"model": self.name, "encoder": dict(self.encoder_config),
                  "hidden": list(self.hidden)}
        if self.shared_encoder:  # only when set, so that older files' configs stay the same
            config["shared_encoder"] = True
        return config

    @property
    def feat_dim(self) -> int:
        return next(iter(self.encoders.values())).out_dim

    @property
    def default_chunk(self) -> int:
        """Queries per decoding chunk (see CHUNK_ELEMENTS)."""
        return max(256, CHUNK_ELEMENTS // max(self.hidden))

    @property
    def halo(self) -> int:
        """LR pixels of context a feature tile needs for exact projections: the encoder's
        receptive radius plus one for the 3x3 unfolding."""
        return max(e.receptive_radius for e in self.encoders.values()) + 1

    def flops(self) -> dict[str, int]:
        """FLOPs per output pixel (plain and fast decoding) and per LR pixel (encoders,
        projections)."""
        decoders = list(self.decoders.values())
        return {
            "decode_plain_per_output_pixel": sum(d.flops_per_query(fast=False) for d in decoders),
            "decode_fast_per_output_pixel": sum(d.flops_per_query(fast=True) for d in decoders),
            "encode_per_lr_pixel": sum(e.flops_per_pixel() for e in self.encoders.values()),
            "project_per_lr_pixel": sum(d.flops_per_projection() for d in decoders),
        }

    # --- encoding ---------------------------------------------------------------------------
    def encode(self, lr: torch.Tensor, encoders: tuple[str, ...] | None = None
               ) -> dict[str, torch.Tensor]:
        """Feature maps of each encoder (or of `encoders`) for RGB `lr` (B, 3, h, w) in [0, 1],
        by encoder name: the branch's name, or for a shared encoder "sr" (`feature_of`)."""
        if self.channels_last:
            lr = lr.contiguous(memory_format=torch.channels_last)
        return {name: self.encoders[name](lr) for name in (encoders or self.encoders)}

    def appearance_embedding(self, features: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """(B, C) global descriptor fed to the decoders, or None for models without one."""
        return None

    def project(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """First-layer projections (B, h, w, D) of each branch's decoder, from `encode`'s
        features."""
        return {b: self.decoders[b].project(features[self.feature_of[b]])
                for b in self.branches}

    # --- decoding ---------------------------------------------------------------------------
    def decode(
        self,
        grids: dict[str, LatentGrid],
        coords: torch.Tensor,
        cells: torch.Tensor,
        image_hw: tuple[int, int],
        appearance: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Fast path, normalised range. Returns {'rgb': (B, N, 3), ...} plus, for DDIR,
        'deformation' (B, N, 3)."""
        nb = local_ensemble(coords, image_hw, dtype=cells.dtype)
        return self._decode(grids, nb, cells, appearance)

    def decode_plain(
        self,
        features: dict[str, torch.Tensor],
        coords: torch.Tensor,
        cells: torch.Tensor,
        appearance: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Reference path over whole-image features, normalised range; as `decode`."""
        image_hw = tuple(next(iter(features.values())).shape[-2:])
        nb = local_ensemble(coords, image_hw, dtype=cells.dtype)
        return self._decode_plain(features, nb, cells, appearance)

    def _decode(self, grids, nb: Neighbours, cells, appearance) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def _decode_plain(self, features, nb: Neighbours, cells, appearance) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def forward(self, lr: torch.Tensor, coords: torch.Tensor, cells: torch.Tensor
                ) -> dict[str, torch.Tensor]:
        """Training: encode a batch of LR crops and decode queries, normalised range. The
        appearance embedding is the mean over each crop, as in the paper's training."""
        features = self.encode(lr)
        appearance = self.appearance_embedding(features)
        grids = {b: LatentGrid(v) for b, v in self.project(features).items()}
        return self.decode(grids, coords, cells, tuple(lr.shape[-2:]), appearance)

    @torch.inference_mode()
    def query(
        self,
        grids: dict[str, LatentGrid],
        coords: torch.Tensor,
        cells: torch.Tensor,
        image_hw: tuple[int, int],
        appearance: torch.Tensor | None = None,
        chunk: int | None = None,
    ) -> torch.Tensor:
        """RGB in [0, 1] (B, N, 3) at `coords` (B, N, 2), decoded in chunks of at most `chunk`
        queries (default: `default_chunk`), at least one per core."""
        n = coords.shape[1]
        out = torch.empty(coords.shape[0], n, 3, device=cells.device, dtype=cells.dtype)
        # Chunks decode on the cores side by side, a thread each (`ddir_zoom.parallel`).
        pieces = even_pieces(n, chunk or self.default_chunk, workers(cells.device))

        def decode(index: int) -> None:
            start, stop = pieces[index]
            rgb = self.decode(grids, coords[:, start:stop], cells[:, start:stop], image_hw,
                              appearance)["rgb"]
            out[:, start:stop] = rgb * 0.5 + 0.5

        run_pieces(decode, len(pieces), cells.device)
        return out

    @torch.inference_mode()
    def query_grid(
        self,
        grids: dict[str, LatentGrid],
        ys: torch.Tensor,
        xs: torch.Tensor,
        cell: tuple[float, float],
        image_hw: tuple[int, int],
        appearance: torch.Tensor | None = None,
        chunk: int | None = None,
    ) -> torch.Tensor:
        """`query` of the grid of points (ys[r], xs[c]) (float64 LR pixel units,
        `geometry.grid_axes`), row-major, all with the cell `cell` (LR pixels): RGB
        (1, R * C, 3), the same values at less cost (`implicit.grid_ensemble`). A chunk is a
        block of whole rows, or of a row's columns when a row is longer than a chunk."""
        rows, cols = len(ys), len(xs)
        device = ys.device
        most = chunk or self.default_chunk
        col_pieces = even_pieces(cols, most, 1)
        width = col_pieces[0][1] - col_pieces[0][0]
        row_pieces = even_pieces(rows, max(1, most // width),
                                 workers(device) if len(col_pieces) == 1 else 1)
        pieces = [(r, c) for r in row_pieces for c in col_pieces]
        cells = torch.tensor(cell, dtype=torch.float32, device=device)
        out = torch.empty(1, rows, cols, 3, device=device, dtype=torch.float32)

        def decode(index: int) -> None:
            (top, bottom), (left, right) = pieces[index]
            nb = grid_ensemble(ys[top:bottom], xs[left:right], image_hw)
            n = (bottom - top) * (right - left)
            rgb = self._decode(grids, nb, cells.expand(1, n, 2).contiguous(), appearance)["rgb"]
            out[0, top:bottom, left:right] = (rgb * 0.5 + 0.5).view(bottom - top, -1, 3)

        run_pieces(decode, len(pieces), device)
        return out.view(1, rows * cols, 3)

    @torch.inference_mode()
    def prepare(self, lr: torch.Tensor) -> tuple[dict[str, LatentGrid], torch.Tensor | None]:
        """Encode and project a whole LR image: what `query` needs."""
        features = self.encode(lr)
        appearance = self.appearance_embedding(features)
        grids = {b: LatentGrid(v) for b, v in self.project(features).items()}
        return grids, appearance
