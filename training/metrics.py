"""Image quality metrics as the paper reports them: PSNR on the Y channel with a border shave
that depends on the scale, and SSIM (Wang et al. 2004) on the same Y channel."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def rgb_to_y(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma of RGB in [0, 1], in 0..255: Y = 16 + (65.738 R + 129.057 G + 25.064 B) / 256
    with RGB in 0..255."""
    rgb = np.asarray(rgb, dtype=np.float64) * 255.0
    return 16.0 + (65.738 * rgb[..., 0] + 129.057 * rgb[..., 1] + 25.064 * rgb[..., 2]) / 256.0


def shave_for_scale(scale: float) -> int:
    """Border shave of the paper: 2 for x1.5 to x2, 3 for x2.3 to x3, 4 for x3.3 to x4 (and
    beyond); scales between the listed bands take the band above."""
    if scale <= 2.0:
        return 2
    if scale <= 3.0:
        return 3
    return 4


def _check(sr: np.ndarray, hr: np.ndarray) -> None:
    if sr.shape != hr.shape:
        raise ValueError(f"cannot compare images of different sizes: {sr.shape} vs {hr.shape}")


def psnr_y(sr: np.ndarray, hr: np.ndarray, shave: int) -> float:
    """PSNR (dB) between the Y channels of two RGB images in [0, 1], `shave` pixels of border
    ignored. sr is clipped to [0, 1] first, as a saved image would be."""
    _check(sr, hr)
    y_sr = rgb_to_y(np.clip(sr, 0.0, 1.0))
    y_hr = rgb_to_y(hr)
    if shave:
        y_sr, y_hr = y_sr[shave:-shave, shave:-shave], y_hr[shave:-shave, shave:-shave]
    mse = np.mean((y_sr - y_hr) ** 2)
    return float("inf") if mse == 0 else float(10.0 * np.log10(255.0**2 / mse))


def ssim_y(sr: np.ndarray, hr: np.ndarray, shave: int) -> float:
    """SSIM of the Y channels (0..255), 11x11 Gaussian window of sigma 1.5, K1 0.01, K2 0.03,
    'valid' windows only (as MATLAB's ssim and BasicSR)."""
    _check(sr, hr)
    y = [rgb_to_y(np.clip(sr, 0.0, 1.0)), rgb_to_y(hr)]
    if shave:
        y = [a[shave:-shave, shave:-shave] for a in y]
    a, b = (torch.from_numpy(np.ascontiguousarray(v))[None, None] for v in y)
    g = torch.exp(-((torch.arange(11, dtype=torch.float64) - 5) ** 2) / (2 * 1.5**2))
    g = g / g.sum()

    def blur(x: torch.Tensor) -> torch.Tensor:
        # The Gaussian window is separable: 11 + 11 taps instead of 121.
        return F.conv2d(F.conv2d(x, g.view(1, 1, 11, 1)), g.view(1, 1, 1, 11))

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(ssim_map.mean())
