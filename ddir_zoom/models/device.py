"""Which torch device to run on: CUDA, then Apple's MPS, then the CPU, or the caller's choice."""

from __future__ import annotations

import torch


def pick_device(preference: str | None = None) -> torch.device:
    """`preference`: None or 'auto' for the best available, else a torch device string such as
    'cpu', 'cuda', 'cuda:1' or 'mps'. Raises ValueError when the asked device is not available."""
    if preference in (None, "", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(preference)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown device {preference!r}") from None
    if device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device {preference!r} cannot render (use auto, cpu, cuda, cuda:N "
                         "or mps)")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("CUDA was asked for, but this torch build or machine has no CUDA GPU")
    if device.type == "cuda" and device.index is not None \
            and device.index >= torch.cuda.device_count():
        raise ValueError(f"there is no {device} (this machine has "
                         f"{torch.cuda.device_count()} CUDA devices)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError("MPS was asked for, but it is not available here")
    return device


def describe(device: torch.device) -> str:
    """A short human name, e.g. 'CPU (2 threads)' or 'CUDA: NVIDIA H100'."""
    if device.type == "cuda":
        return f"CUDA: {torch.cuda.get_device_name(device)}"
    if device.type == "mps":
        return "Apple GPU (MPS)"
    n = torch.get_num_threads()
    return f"CPU ({n} thread{'' if n == 1 else 's'})"
