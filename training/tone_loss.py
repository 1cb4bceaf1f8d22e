"""Tone consistency as a training loss: the tone anchor's measurement, asked of the model itself.

The tone anchor (`ddir_zoom.models.tone_anchor`) takes a model's low-frequency drift out at
inference: c = G_sigma * (LR - d), where d(i) is the mean of the zoom's colours at the two points
SAMPLE_OFFSETS from the centre of LR pixel i (the area mean of the zoom over pixel i). The longer
a model trains on real pairs, the more it drifts (the paper-size run: 0.85, 0.90, 0.98, 1.06
levels at x3.7 after 3450, 5029, 6357, 7744 steps), and the anchor's correction, which also
removes whatever the model put at low frequency for a reason, costs more. This term asks the
model for the consistency the anchor enforces:

    L_tone = || G_sigma * (LR - d) ||_1    over a `window` x `window` block of each LR patch,
                                           at the sample's own scale (its cell), normalised range

d is decoded in the same forward pass as the patch's queries (its points appended to them), so
the encoder runs once. The block lies `MARGIN` pixels in from the patch's edge, where the encoder's
zero padding does not reach the latents a photo's interior would have; the low-pass is
renormalised at the block's edge (`tone_anchor.lowpass`), as the anchor's is at a photo's.

Why sigma 3 and a 20-pixel block, not the anchor's 1.25: the term was measured continuing the
paper-size run from its committed step-6994 state (800 steps, weight 1; the model card). At
sigma 1.25 (block 12) the Gaussian still passes the mid frequencies the model must restore, so
the term fought deblurring: City100's validation fell from 25.60 to 25.44 dB in 350 steps. At
sigma 3 (block 20), about the tone check's 8-pixel block means, it fell only to 25.53, and the
model's own tones, without the anchor, came out 2-4 times closer to the photo's.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ddir_zoom.models.tone_anchor import SAMPLE_OFFSETS, lowpass

MARGIN = 4
"""LR pixels between the block and the patch edge: the encoder's 3 x 3 convolutions see the
patch's zero padding a few pixels in; a photo's interior has none."""


@dataclass(frozen=True)
class ToneLoss:
    """The term's settings: its weight in the loss, the block's side and the low-pass width
    (LR pixels, as a model file's `tone_anchor_sigma`)."""

    weight: float
    window: int = 20
    sigma: float = 3.0

    def queries(self, lr: torch.Tensor, cells: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Points for d over a random block of each patch of `lr` (B, 3, p, p): coords and
        cells (B, k * w * w, 2) (k offsets, offset-major, the block row-major; each sample's
        cell its queries' first), and the blocks' origins (B, 2), drawn from torch's generator."""
        b, _, h, w = lr.shape
        n = self.window
        if min(h, w) < n + 2 * MARGIN:
            raise ValueError(f"a {h} x {w} patch is too small for a {n} x {n} tone block "
                             f"{MARGIN} pixels in from its edge")
        origins = torch.stack([torch.randint(MARGIN, h - n - MARGIN + 1, (b,)),
                               torch.randint(MARGIN, w - n - MARGIN + 1, (b,))], 1)
        steps = torch.arange(n, dtype=torch.float32) + 0.5
        block = torch.stack(torch.meshgrid(steps, steps, indexing="ij"), -1).reshape(-1, 2)
        centres = origins.to(torch.float32)[:, None, :] + block[None]  # (B, n * n, 2)
        offsets = torch.tensor(SAMPLE_OFFSETS, dtype=torch.float32)
        coords = torch.cat([centres + o for o in offsets], 1).to(lr.device)
        tone_cells = cells[:, :1].expand(-1, coords.shape[1], -1)
        return coords, tone_cells, origins

    def term(self, rgb: torch.Tensor, lr: torch.Tensor, origins: torch.Tensor) -> torch.Tensor:
        """L_tone from the model's output `rgb` (B, k * w * w, 3, normalised range) at
        `queries`' points, over the blocks of `lr` (B, 3, p, p, in [0, 1]) at `origins`.
        Colours are clamped to [0, 1] as they are shown and as the anchor measures them."""
        n = self.window
        k = len(SAMPLE_OFFSETS)
        colours = (rgb * 0.5 + 0.5).clamp(0.0, 1.0)
        d = colours.view(rgb.shape[0], k, n, n, 3).mean(1).permute(0, 3, 1, 2)
        blocks = torch.stack([lr[i, :, y:y + n, x:x + n]
                              for i, (y, x) in enumerate(origins.tolist())])
        valid = torch.ones(1, 1, n, n, device=lr.device, dtype=lr.dtype)
        drift = lowpass(blocks - d, valid, self.sigma)
        return drift.abs().mean() / 0.5  # the normalised range, as the other terms
