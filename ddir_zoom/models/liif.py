"""LIIF (Chen, Liu and Wang, CVPR 2021): one encoder, one local implicit decoder.

The baseline DDIR is compared with; trained on the same data it shows what the dual-level
deformation adds.
"""

from __future__ import annotations

from typing import Any

import torch

from ddir_zoom.models.base import ImplicitSR
from ddir_zoom.models.implicit import LocalImplicitDecoder, Neighbours


class LIIF(ImplicitSR):
    name = "liif"
    branches = ("sr",)

    def __init__(self, encoder: dict[str, Any], hidden: list[int],
                 shared_encoder: bool = False) -> None:
        super().__init__(encoder, hidden)  # one branch: nothing to share
        self.decoders["sr"] = LocalImplicitDecoder(self.feat_dim, 0, hidden)

    def _decode(self, grids, nb: Neighbours, cells, appearance) -> dict[str, torch.Tensor]:
        rgb = self.decoders["sr"].decode(grids["sr"], nb, cells)
        return {"rgb": rgb}

    def _decode_plain(self, features, nb: Neighbours, cells, appearance
                      ) -> dict[str, torch.Tensor]:
        rgb = self.decoders["sr"].decode_plain(features["sr"], nb, cells)
        return {"rgb": rgb}
