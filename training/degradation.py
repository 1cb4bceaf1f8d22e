"""A synthetic real-camera degradation: what a shorter focal length does to a photo.

HR -> optical blur (isotropic or anisotropic Gaussian, on the HR grid) -> area downsampling by
the scale (larger sensor footprint per pixel) -> signal-dependent sensor noise -> in-camera
sharpening (unsharp mask) -> JPEG.

No photometric shift: LR and HR have the same tones. A model trained to undo a random exposure,
white balance or tone curve "corrects" every photo it zooms into, which a viewer must never do
(tone fidelity, see `training.tone`). The blur and sharpening ranges cover what
`training.fit_degradation` measures on City100's iPhone X training scenes, widened so that other
cameras (softer lenses, stronger or no sharpening) fall inside them.
`RANGES` are those ranges (the evaluation's synthetic sets are drawn from them, so they stay
fixed); `WIDE` reaches further, for training runs that draw a share of their samples from it
(`training.camera_sweep` measures the models on cameras inside and outside both).

Every random choice comes from the generator passed in, so a seed fixes the result. LR pixel i
shows the HR point (i + 0.5) * scale, as everywhere in ddir-zoom.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ddir_zoom.imaging.io import to_uint8
from ddir_zoom.imaging.resample import resample_region

SCALE_RANGE = (1.5, 4.0)

# Named degradations for ablation (`python -m training.ablate_degradation`): the full pipeline,
# each stage left out in turn, and none of them (area downsampling only, as bicubic-trained
# models see). Every variant draws the same random numbers as "full", so runs that differ in
# the variant see the same patches, scales and noise fields.
STAGES = ("blur", "noise", "sharpen", "jpeg")
VARIANTS: dict[str, frozenset[str]] = {
    "full": frozenset(STAGES),
    **{f"no-{stage}": frozenset(STAGES) - {stage} for stage in STAGES},
    "area-only": frozenset(),
}


@dataclass(frozen=True)
class DegradationParams:
    """One draw of the degradation. Blur sigmas and the sharpening radius are in LR pixels
    (they scale with the zoom)."""

    blur_sigma_major: float
    blur_sigma_minor: float
    blur_angle: float
    noise_shot: float  # variance per unit signal
    noise_read: float  # constant variance
    sharpen_amount: float  # unsharp mask: x + amount * (x - blur(x)); 0: none
    sharpen_radius: float
    jpeg_quality: int  # 0: no JPEG

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Ranges:
    """Where `draw_params` draws from (inclusive). Each stage may also be absent: no noise,
    no sharpening, no JPEG."""

    blur_sigma: tuple[float, float] = (0.3, 1.2)  # LR pixels, both axes
    log10_noise_shot: tuple[float, float] = (-4.5, -3.0)
    log10_noise_read: tuple[float, float] = (-6.0, -4.5)
    sharpen_amount: tuple[float, float] = (0.2, 2.0)
    sharpen_radius: tuple[float, float] = (0.6, 1.5)
    jpeg_quality: tuple[int, int] = (70, 95)

    def holds(self, p: DegradationParams) -> bool:
        """Whether `draw_params` can draw `p` (up to its continuous values)."""
        def within(value: float, bounds: tuple[float, float]) -> bool:
            return bounds[0] <= value <= bounds[1]

        def log_within(value: float, bounds: tuple[float, float]) -> bool:
            return value > 0 and within(float(np.log10(value)), bounds)
        noise_off = p.noise_shot == 0.0 and p.noise_read == 0.0
        return (within(p.blur_sigma_major, self.blur_sigma)
                and within(p.blur_sigma_minor, (self.blur_sigma[0], p.blur_sigma_major))
                and (noise_off or (log_within(p.noise_shot, self.log10_noise_shot)
                                   and log_within(p.noise_read, self.log10_noise_read)))
                and (p.sharpen_amount == 0.0
                     or (within(p.sharpen_amount, self.sharpen_amount)
                         and within(p.sharpen_radius, self.sharpen_radius)))
                and (p.jpeg_quality == 0 or within(p.jpeg_quality, self.jpeg_quality)))


RANGES = Ranges()
"""The ranges the evaluation's synthetic sets are drawn from (`training.evaluate`): fixed."""

WIDE = Ranges(blur_sigma=(0.05, 2.0), log10_noise_shot=(-4.5, -2.3),
              log10_noise_read=(-6.0, -4.0), sharpen_amount=(0.2, 3.5), jpeg_quality=(40, 95))
"""Cameras beyond `RANGES`: near-perfect sampling to very soft lenses, high ISO, heavy
sharpening, low-quality JPEG. From what cameras do in general, not from City100; training may
draw a share of its samples from here (`draw_params(wide_share=...)`) so that a camera unlike
ours still gains (`training.camera_sweep` measures it)."""


SOFT = replace(WIDE, blur_sigma=(RANGES.blur_sigma[0], WIDE.blur_sigma[1]))
"""`WIDE` without its sharp end: blur from `RANGES`' lower bound up. A share of 0.5 from `WIDE`
cost 0.05-0.15 dB on sharp inputs and its blur below 0.3 LR pixels did not help near-perfect
sampling (README, Quality), so this variant keeps only the softer, noisier cameras."""

WIDER_RANGES = {"wide": WIDE, "soft": SOFT}
"""The ranges a training run may draw its wide share from, by name (`train.py --wide-ranges`)."""


def draw_params(rng: np.random.Generator, variant: str = "full", wide_share: float = 0.0,
                wide: Ranges = WIDE) -> DegradationParams:
    """Draw degradation parameters: a real wide shot is a little softer and noisier than the
    telephoto shot, often sharpened in camera and JPEG-compressed, not ruined.

    variant: a name in `VARIANTS`; its missing stages are switched off after the draw.
    wide_share: the probability of drawing from `wide` (default `WIDE`) instead of `RANGES`.
    At 0 no extra random number is drawn, so a seed gives the draws it always gave.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown degradation {variant!r}; one of {', '.join(VARIANTS)}")
    r = wide if wide_share > 0.0 and rng.random() < wide_share else RANGES
    major = float(rng.uniform(*r.blur_sigma))
    anisotropic = rng.random() < 0.4
    minor = float(rng.uniform(r.blur_sigma[0], major)) if anisotropic else major
    noisy = rng.random() < 0.7
    sharpened = rng.random() < 0.5
    params = DegradationParams(
        blur_sigma_major=major,
        blur_sigma_minor=minor,
        blur_angle=float(rng.uniform(0, np.pi)),
        noise_shot=float(10 ** rng.uniform(*r.log10_noise_shot)) if noisy else 0.0,
        noise_read=float(10 ** rng.uniform(*r.log10_noise_read)) if noisy else 0.0,
        sharpen_amount=float(rng.uniform(*r.sharpen_amount)) if sharpened else 0.0,
        sharpen_radius=float(rng.uniform(*r.sharpen_radius)),
        jpeg_quality=int(rng.integers(r.jpeg_quality[0], r.jpeg_quality[1] + 1))
        if rng.random() < 0.6 else 0,
    )
    stages = VARIANTS[variant]
    off = {}
    if "blur" not in stages:
        off.update(blur_sigma_major=0.0, blur_sigma_minor=0.0)
    if "noise" not in stages:
        off.update(noise_shot=0.0, noise_read=0.0)
    if "sharpen" not in stages:
        off.update(sharpen_amount=0.0)
    if "jpeg" not in stages:
        off.update(jpeg_quality=0)
    return replace(params, **off)


def gaussian_kernel(sigma_major: float, sigma_minor: float, angle: float) -> np.ndarray:
    """Normalised 2D Gaussian with the given axes (pixels) and rotation, odd size."""
    radius = max(1, int(np.ceil(3.0 * sigma_major)))
    y, x = np.mgrid[-radius:radius + 1, -radius:radius + 1].astype(np.float64)
    c, s = np.cos(angle), np.sin(angle)
    u = c * x + s * y
    v = -s * x + c * y
    kernel = np.exp(-0.5 * ((u / sigma_major) ** 2 + (v / sigma_minor) ** 2))
    return (kernel / kernel.sum()).astype(np.float32)


def convolve(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """'same' 2D convolution of (h, w, c) with edge replication (the kernel is symmetric)."""
    r = kernel.shape[0] // 2
    channels = image.shape[2]
    x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None]
    x = F.pad(x, (r, r, r, r), mode="replicate")
    weight = torch.from_numpy(kernel)[None, None].expand(channels, 1, *kernel.shape)
    with torch.no_grad():
        out = F.conv2d(x, weight.contiguous(), groups=channels)
    return out[0].numpy().transpose(1, 2, 0).copy()


def sharpen(image: np.ndarray, amount: float, radius: float) -> np.ndarray:
    """Unsharp mask, as cameras and phones apply it to their JPEGs; mean-preserving."""
    if amount <= 0.0:
        return image
    blurred = convolve(image, gaussian_kernel(radius, radius, 0.0))
    return np.clip(image + amount * (image - blurred), 0.0, 1.0)


def add_noise(image: np.ndarray, p: DegradationParams, rng: np.random.Generator) -> np.ndarray:
    if p.noise_shot == 0.0 and p.noise_read == 0.0:
        return image
    std = np.sqrt(p.noise_shot * image + p.noise_read)
    noise = rng.standard_normal(image.shape).astype(np.float32)
    return np.clip(image + std * noise, 0.0, 1.0)


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    if quality <= 0:
        return image
    buffer = io.BytesIO()
    Image.fromarray(to_uint8(image)).save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.asarray(decoded.convert("RGB")).astype(np.float32) / 255.0


def degrade(
    hr: np.ndarray,
    scale: float,
    rng: np.random.Generator,
    params: DegradationParams | None = None,
    out_shape: tuple[int, int] | None = None,
    variant: str = "full",
    wide_share: float = 0.0,
    wide: Ranges = WIDE,
) -> tuple[np.ndarray, DegradationParams]:
    """LR image (float32 (h, w, 3) in [0, 1]) of `hr` at `scale` > 1, and the parameters used.

    out_shape: LR size; default round(H / scale) x round(W / scale).
    variant: which stages of the pipeline run (`VARIANTS`), when `params` is not given.
    wide_share, wide: see `draw_params`.
    """
    if scale <= 1.0:
        raise ValueError(f"the degradation scale must exceed 1, got {scale}")
    params = params or draw_params(rng, variant, wide_share, wide)
    hr = np.asarray(hr, dtype=np.float32)
    blurred = hr
    if params.blur_sigma_major > 0.0:
        kernel = gaussian_kernel(params.blur_sigma_major * scale,
                                 params.blur_sigma_minor * scale, params.blur_angle)
        blurred = convolve(hr, kernel)
    if out_shape is None:
        out_shape = (max(1, round(hr.shape[0] / scale)), max(1, round(hr.shape[1] / scale)))
    lr = resample_region(blurred, 1.0 / scale, (0, 0), out_shape, method="area")
    lr = add_noise(lr, params, rng)
    lr = sharpen(lr, params.sharpen_amount, params.sharpen_radius)
    lr = jpeg(lr, params.jpeg_quality)
    return lr.astype(np.float32), params
