"""DDIR: Dual-level Deformable Implicit Representation (Li et al., ECCV 2024).

Two branches with separate encoders (or, as an option the paper does not have, one shared
encoder; see `ImplicitSR.feature_of`) and decoders:
- deformation branch: f_d([unfolded F_d latent, rel coord, cell, appearance embedding a]) -> 3,
  ensembled over the 4 neighbours into the deformation dI(x_q). Supervised in training by
  HR - bicubic_up(LR) (pixel-level deformation).
- SR branch: f_sr([unfolded F_sr latent, rel coord, cell, dI(x_q)]) -> RGB, ensembled.
The appearance embedding a is the spatial mean of F_sr over the whole input (image-level
deformation: exposure, white balance, tone). No bicubic residual is added to the output.
"""

from __future__ import annotations

from typing import Any

import torch

from ddir_zoom.models.base import ImplicitSR
from ddir_zoom.models.implicit import LocalImplicitDecoder, Neighbours


class DDIR(ImplicitSR):
    name = "ddir"
    branches = ("deformation", "sr")
    has_appearance_embedding = True

    def __init__(self, encoder: dict[str, Any], hidden: list[int],
                 shared_encoder: bool = False) -> None:
        super().__init__(encoder, hidden, shared_encoder)
        c = self.feat_dim
        self.decoders["deformation"] = LocalImplicitDecoder(c, c, hidden)
        self.decoders["sr"] = LocalImplicitDecoder(c, 3, hidden)

    def appearance_embedding(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean of F_sr over the image, taken before unfolding: (B, C)."""
        return features[self.feature_of["sr"]].mean(dim=(2, 3))

    def _decode(self, grids, nb: Neighbours, cells, appearance) -> dict[str, torch.Tensor]:
        if appearance is None:
            raise ValueError("DDIR needs the appearance embedding")
        deformation = self.decoders["deformation"].decode(
            grids["deformation"], nb, cells, appearance.unsqueeze(1))
        rgb = self.decoders["sr"].decode(grids["sr"], nb, cells, deformation)
        return {"rgb": rgb, "deformation": deformation}

    def _decode_plain(self, features, nb: Neighbours, cells, appearance
                      ) -> dict[str, torch.Tensor]:
        if appearance is None:
            raise ValueError("DDIR needs the appearance embedding")
        deformation = self.decoders["deformation"].decode_plain(
            features[self.feature_of["deformation"]], nb, cells, appearance.unsqueeze(1))
        rgb = self.decoders["sr"].decode_plain(features[self.feature_of["sr"]], nb, cells,
                                               deformation)
        return {"rgb": rgb, "deformation": deformation}
