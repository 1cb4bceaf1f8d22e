"""An exponential moving average of a model's weights (`train.py --ema DECAY`).

Not in the paper's recipe. On this project's CPU a run is a few hundred steps of batch 16, and
from one validation to the next the weights wander: the paper-size DDIR's Set5 x2.3 score moved
by up to 1 dB between validations 150 steps apart at a constant learning rate of 5e-5. Averaging
the weights over the last 1 / (1 - DECAY) steps keeps what those steps agree on and drops their
noise, so validation, `best.safetensors` and the shipped file use the average; the optimiser
still steps the raw weights. The average starts from the weights the run starts (or resumes)
from, which for a run continued from a trained model is already a good model, so no warm-up.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class WeightAverage:
    """`average = decay * average + (1 - decay) * weights` after every optimiser step."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"the average's decay must be in (0, 1), not {decay}")
        self.decay = decay
        self.model = copy.deepcopy(model).requires_grad_(False).eval()

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for average, current in zip(self.model.parameters(), model.parameters(), strict=True):
            average.lerp_(current.detach(), 1.0 - self.decay)
        for average, current in zip(self.model.buffers(), model.buffers(), strict=True):
            average.copy_(current)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.model.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.model.load_state_dict(state)
