"""Tone fidelity: a zoom must not change a photo's colours or brightness.

The zoomed image is area-averaged back onto the photo's own pixel grid, then both are low-passed
by area averaging over blocks of `LOWPASS` photo pixels: what remains is exposure, colour balance
and contrast at the scale of whole regions, where a super-resolution model has nothing to add.
Per channel, in 8-bit levels, we compare the two low-passes by

- the mean absolute difference (MAD), and
- the contrast change: the least-squares slope (gain) of the zoom's low-pass against the
  photo's, as the levels it moves across the middle 90% of that channel's low-pass
  (|gain - 1| x its 5th-95th percentile spread): a gain matters in proportion to the contrast
  it scales, so a flat region cannot fail on a meaningless slope, nor a high-contrast one pass.

Tolerance (`TOLERANCE`): 1.0 level for both (one step of an 8-bit display; bicubic, which cannot
shift tones, measures 0.05-0.4 levels on real photos, its ringing at edges being all there is).
The compact models trained with City100's raw pairs and photometric augmentation broke it at
every scale (1.3-3.6 levels).

On an evaluation pair the photo is a degraded LR and the scene's own tones are the HR's. The
degradation moves block means itself (blur carries light across block edges, sharpening and
clipping do not average out): on the worst image of every City100, Set14 and B100 row of the
README's quality table the LR's low-pass lies 1.8-3.2 levels (MAD) from the HR's
(`truth_on_photo_grid`, recorded by `evaluate.py` as `lr_truth_tone_*`), so a zoom as good as
the truth fails the check against the LR. There the check is made against the truth
(`truth_check`): the zoom may not move further from the scene's tones than the photo it was
given, by more than the tolerance. The check against the photo is the invariant for a user's
own photo, which has no truth (the tone rows of `evaluate.py --tone`, and the tests).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ddir_zoom.imaging.resample import resample_region

LOWPASS = 8.0
"""Photo pixels per side of a low-pass block: far coarser than any detail a zoom adds."""


@dataclass(frozen=True)
class ToneTolerance:
    mad_255: float = 1.0
    contrast_255: float = 1.0


TOLERANCE = ToneTolerance()


@dataclass(frozen=True)
class ToneError:
    """Worst channel's mean absolute difference (8-bit levels), the signed mean difference of
    each channel, the worst gain deviation |gain - 1|, and the worst channel's contrast change
    in levels (|gain - 1| x its low-pass spread)."""

    mad_255: float
    mean_diff_255: tuple[float, float, float]
    gain_error: float
    contrast_255: float = 0.0

    def ok(self, tolerance: ToneTolerance = TOLERANCE) -> bool:
        return (self.mad_255 <= tolerance.mad_255
                and self.contrast_255 <= tolerance.contrast_255)

    def as_dict(self) -> dict:
        return asdict(self)


def lowpass(image: np.ndarray, factor: float = LOWPASS) -> np.ndarray:
    shape = (max(1, int(image.shape[0] / factor)), max(1, int(image.shape[1] / factor)))
    return resample_region(image, 1.0 / factor, (0, 0), shape, "area")


Scale = tuple[float, float] | float


def _onto_photo_grid(image: np.ndarray, scale: Scale, shape: tuple[int, int]) -> np.ndarray:
    """`image`, rendered at `scale` from a photo (pixel j showing the photo point (j + 0.5) / s),
    area-averaged back onto the photo's first `shape` pixels."""
    sy, sx = (scale, scale) if np.isscalar(scale) else scale
    return resample_region(image, (1.0 / sy, 1.0 / sx), (0, 0), shape, "area")


def shrink_back(zoomed: np.ndarray, photo_shape: tuple[int, ...], scale: Scale) -> np.ndarray:
    """The zoom as shown (clamped to [0, 1]) area-averaged onto the photo's grid, over the photo
    pixels it covers completely: the rendered grid may stop short of the photo's last row /
    column (rounding)."""
    sy, sx = (scale, scale) if np.isscalar(scale) else scale
    h = min(photo_shape[0], int(zoomed.shape[0] / sy))
    w = min(photo_shape[1], int(zoomed.shape[1] / sx))
    return _onto_photo_grid(np.clip(zoomed, 0.0, 1.0), scale, (h, w))


def tone_error(zoomed: np.ndarray, photo: np.ndarray, scale: Scale) -> ToneError:
    """How far `zoomed` (the photo rendered at `scale`, pixel j showing the photo point
    (j + 0.5) / s) departs from `photo`'s tones. Both float (h, w, 3) in [0, 1]."""
    return shrunk_error(shrink_back(zoomed, photo.shape, scale), photo)


def shrunk_error(back: np.ndarray, photo: np.ndarray) -> ToneError:
    """`tone_error` of a zoom already shrunk back (`shrink_back`): one shrinking serves every
    reference on the photo's grid (the photo, the truth)."""
    h, w = back.shape[:2]
    a = lowpass(back).reshape(-1, 3).astype(np.float64)
    b = lowpass(photo[:h, :w]).reshape(-1, 3).astype(np.float64)
    diff = (a - b) * 255.0
    gains, contrast = [], []
    for c in range(3):
        centred = b[:, c] - b[:, c].mean()
        var = float(centred @ centred)
        # A flat channel has no contrast to keep: its gain is undefined, its MAD still counts.
        gain = float(centred @ (a[:, c] - a[:, c].mean())) / var if var > 1e-8 else 1.0
        spread = float(np.percentile(b[:, c], 95) - np.percentile(b[:, c], 5)) * 255.0
        gains.append(gain)
        contrast.append(abs(gain - 1.0) * spread)
    return ToneError(mad_255=float(np.abs(diff).mean(0).max()),
                     mean_diff_255=tuple(float(v) for v in diff.mean(0)),
                     gain_error=float(max(abs(g - 1.0) for g in gains)),
                     contrast_255=float(max(contrast)))


def worst(errors: list[ToneError]) -> ToneError:
    """The worst of several measurements, channel by channel."""
    means = np.array([e.mean_diff_255 for e in errors])
    pick = np.abs(means).argmax(0)
    return ToneError(mad_255=max(e.mad_255 for e in errors),
                     mean_diff_255=tuple(float(means[pick[c], c]) for c in range(3)),
                     gain_error=max(e.gain_error for e in errors),
                     contrast_255=max(e.contrast_255 for e in errors))


def truth_on_photo_grid(hr: np.ndarray, photo_shape: tuple[int, ...], scale: Scale
                        ) -> np.ndarray:
    """The HR image area-averaged onto the photo's pixel grid: the scene's tones as the photo
    would show them without its degradation. Against it, a zoom's error is `shrunk_error(back,
    truth)` and the photo's own `tone_error(photo, truth, 1.0)`."""
    return _onto_photo_grid(hr, scale, tuple(photo_shape[:2]))


@dataclass(frozen=True)
class TruthCheck:
    """Over a set of pairs: the worst excess of the zoom's tone error against the truth over the
    photo's own (MAD and contrast change, levels, image by image), and the worst of each."""

    excess_mad_255: float
    excess_contrast_255: float
    zoom: ToneError
    photo: ToneError

    def ok(self, tolerance: ToneTolerance = TOLERANCE) -> bool:
        return (self.excess_mad_255 <= tolerance.mad_255
                and self.excess_contrast_255 <= tolerance.contrast_255)


def truth_check(gaps: list[tuple[ToneError, ToneError]]) -> TruthCheck:
    """(the zoom against the truth, the photo against the truth) for every pair of a set, judged
    together: the check holds when on no image the
    zoom is further from the scene's tones than the photo was by more than the tolerance."""
    return TruthCheck(excess_mad_255=max(z.mad_255 - p.mad_255 for z, p in gaps),
                      excess_contrast_255=max(z.contrast_255 - p.contrast_255 for z, p in gaps),
                      zoom=worst([z for z, _ in gaps]), photo=worst([p for _, p in gaps]))
