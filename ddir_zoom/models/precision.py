"""Decoding precision: exact float32, or the named approximation "bfloat16".

"bfloat16" runs the decoder MLPs' hidden layers (the 256 x 256 products that are most of a
paper-size model's decoding) in bfloat16 with float32 accumulation, where the hardware has
native bfloat16 products (x86 CPUs with AVX512-BF16 or AMX, through oneDNN; CUDA GPUs that
support it). The first layer (the gathered projections, the coordinate, cell and extra terms),
the last layer, the local ensemble and everything else stay float32. On this project's CPU (a
Xeon with AMX) the hidden layers' products are several times faster in bfloat16; what that
gives a whole view is for benchmarks/viewport.py --precision bfloat16 to say.

It is an approximation, with a tested bound (tests/test_models.py: the shipped DDIR on the
bundled photo, at most 1 level of 255 from float32 anywhere, 0.1 level on average) and a
measured quality cost (none at 0.01 dB on City100 and Set14:
benchmarks/results/quality_ddir_bfloat16.json). float32 is the default everywhere; a user picks
bfloat16 with `--precision` or the viewer's setting, and the GUI, command line and exports of
one engine all decode with the engine's precision, so they show the same pixels.
"""

from __future__ import annotations

import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
PRECISIONS = tuple(DTYPES)


def native_bfloat16(device: torch.device) -> bool:
    """Whether `device` multiplies bfloat16 matrices natively (else it would be emulated, and
    slower than float32)."""
    if device.type == "cpu":
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    return False


def resolve(precision: str, device: torch.device) -> tuple[str, str | None]:
    """The precision to decode with on `device` for the one asked, and a sentence for the user
    when it differs. Raises ValueError for an unknown name."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose {' or '.join(PRECISIONS)}")
    if precision == "bfloat16" and not native_bfloat16(device):
        return "float32", (f"bfloat16 decoding needs native bfloat16 products ({device} has "
                           "none: a CPU with AVX512-BF16 or AMX, or a recent CUDA GPU); "
                           "decoding in float32")
    return precision, None
