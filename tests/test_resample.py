"""Reference resampling: the kernel, an independent bicubic (Pillow), area averaging, and the
exactness of regions."""

import numpy as np
import pytest
from PIL import Image

from ddir_zoom.imaging.resample import (
    cubic_kernel,
    output_size,
    resample_region,
    resize,
    sample_bicubic,
)


def test_cubic_kernel_is_keys_a_minus_half():
    x = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 2.5])
    np.testing.assert_allclose(cubic_kernel(x), [1.0, 0.5625, 0.0, -0.0625, 0.0, 0.0])
    # partition of unity at any phase
    for t in np.linspace(0, 1, 7):
        assert cubic_kernel(np.array([t + 1, t, t - 1, t - 2])).sum() == pytest.approx(1.0)


@pytest.mark.parametrize("size", [(37, 50), (60, 41), (101, 77)])
def test_bicubic_upscale_matches_pillow_inside(rng, size):
    """Pillow's float bicubic uses the same kernel and pixel centres; it renormalises at the
    border instead of repeating edge pixels, so compare away from the border."""
    image = rng.random((20, 17)).astype(np.float32)
    ours = resize(image, size=size)
    pillow = np.asarray(Image.fromarray(image, "F").resize(size[::-1], Image.Resampling.BICUBIC))
    margin = 2 * max(size[0] // 20, size[1] // 17) + 2
    np.testing.assert_allclose(ours[margin:-margin, margin:-margin],
                               pillow[margin:-margin, margin:-margin], atol=2e-5)


def test_scale_one_is_identity_and_sizes_round(rng):
    image = rng.random((9, 13, 3)).astype(np.float32)
    np.testing.assert_allclose(resize(image, scale=1.0), image, atol=1e-6)
    # pixels whose centres lie inside: 9 * 2.5 = 22.5 -> 22, 23.5 -> 23, 22.6 -> 23
    assert output_size((9, 13), 2.5) == (22, 32)
    assert output_size((47, 113), 0.5) == (23, 56)
    assert output_size((113, 10), 0.2) == (23, 2)
    assert resize(image, scale=2.5).shape == (22, 32, 3)
    assert resize(image, size=(5, 4)).shape == (5, 4, 3)


def test_area_is_block_mean_at_integer_factors(rng):
    image = rng.random((12, 18, 3)).astype(np.float32)
    blocks = image.reshape(4, 3, 6, 3, 3).mean(axis=(1, 3))
    np.testing.assert_allclose(resize(image, scale=1 / 3, method="area"), blocks, atol=1e-6)


def test_area_preserves_the_mean_at_any_factor(rng):
    image = rng.random((70, 45)).astype(np.float32)
    out = resize(image, scale=(1 / 2.5, 1 / 2.5), method="area")  # 70/2.5 = 28, 45/2.5 = 18
    assert out.shape == (28, 18)
    assert out.mean() == pytest.approx(image.mean(), abs=1e-5)


@pytest.mark.parametrize("method", ["bicubic", "area"])
@pytest.mark.parametrize("scale", [0.37, 1.7, 2.5, 7.3])
def test_region_equals_same_pixels_of_full_render(rng, method, scale):
    image = rng.random((23, 31, 3)).astype(np.float32)
    full = resize(image, scale=scale, method=method)
    h, w = full.shape[:2]
    for _ in range(5):
        oy, ox = rng.integers(0, h - 1), rng.integers(0, w - 1)
        oh, ow = rng.integers(1, h - oy + 1), rng.integers(1, w - ox + 1)
        region = resample_region(image, scale, (oy, ox), (oh, ow), method)
        np.testing.assert_array_equal(region, full[oy:oy + oh, ox:ox + ow])


def test_sample_bicubic_equals_grid(rng):
    image = rng.random((11, 14, 3)).astype(np.float32)
    s = 2.3
    grid = resample_region(image, s, (0, 0), (25, 32))
    ys, xs = (np.arange(25) + 0.5) / s, (np.arange(32) + 0.5) / s
    points = np.stack(np.meshgrid(ys, xs, indexing="ij"), -1).reshape(-1, 2)
    np.testing.assert_allclose(sample_bicubic(image, points).reshape(25, 32, 3), grid, atol=1e-6)


def test_bad_arguments():
    with pytest.raises(ValueError):
        resize(np.zeros((4, 4)), scale=2, size=(8, 8))
    with pytest.raises(ValueError):
        resize(np.zeros((4, 4)), size=(0, 8))
    with pytest.raises(ValueError):
        resize(np.zeros((4, 4)), scale=2, method="lanczos")
