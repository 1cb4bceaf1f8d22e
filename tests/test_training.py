"""Training and evaluation: the degradation, the data geometry, a few real training steps, and
evaluation against direct computation."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from ddir_zoom.imaging import load_photo, resize
from ddir_zoom.imaging.resample import sample_bicubic
from ddir_zoom.models import load_checkpoint, make_model, save_checkpoint
from ddir_zoom.models.checkpoint import read_header
from ddir_zoom.models.upscale import upscale_image
from training import evaluate, report, train
from training.data import (
    City100Source,
    Mixture,
    RealArbiSRSource,
    SyntheticSource,
    area_region,
    augment,
    hr_pixels_in_patch,
)
from training.degradation import VARIANTS, degrade, draw_params, gaussian_kernel
from training.metrics import psnr_y, rgb_to_y, shave_for_scale, ssim_y


def _smooth_photo(rng, h, w):
    """A photo-like image: smooth colour fields plus some texture."""
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([np.sin(7 * x + 2 * y), np.cos(5 * y - 3 * x), np.sin(4 * x * y + 1)], -1)
    texture = resize(rng.random((h // 4 + 1, w // 4 + 1, 3)), size=(h, w))
    return np.clip(0.5 + 0.3 * base + 0.2 * (texture - 0.5), 0, 1).astype(np.float32)


def _save(path, rgb):
    Image.fromarray((np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)).save(path)


# --- degradation ----------------------------------------------------------------------------

def test_degradation_is_seeded_and_sized(rng):
    hr = _smooth_photo(rng, 90, 120)
    a, pa = degrade(hr, 2.5, np.random.default_rng(7))
    b, pb = degrade(hr, 2.5, np.random.default_rng(7))
    c, _ = degrade(hr, 2.5, np.random.default_rng(8))
    assert np.array_equal(a, b) and pa == pb
    assert not np.array_equal(a, c)
    assert a.shape == (36, 48, 3) and a.dtype == np.float32
    assert a.min() >= 0.0 and a.max() <= 1.0


def test_degradation_varies(rng):
    """Over many draws: anisotropic blur, noise, sharpening and JPEG each occur and each is
    sometimes absent."""
    params = [draw_params(np.random.default_rng(i)) for i in range(200)]
    assert any(p.blur_sigma_minor < p.blur_sigma_major for p in params)
    assert any(p.blur_sigma_minor == p.blur_sigma_major for p in params)
    assert any(p.noise_shot > 0 for p in params) and any(p.noise_shot == 0 for p in params)
    assert any(p.sharpen_amount > 0 for p in params)
    assert any(p.sharpen_amount == 0 for p in params)
    assert any(p.jpeg_quality > 0 for p in params) and any(p.jpeg_quality == 0 for p in params)


def test_the_ranges_hold_every_draw_and_nothing_outside():
    from dataclasses import replace

    from training.degradation import RANGES
    params = [draw_params(np.random.default_rng(i)) for i in range(200)]
    assert all(RANGES.holds(p) for p in params)
    p = params[0]
    for change in ({"blur_sigma_major": 1.6, "blur_sigma_minor": 1.6}, {"blur_sigma_minor": 0.1},
                   {"noise_shot": 10 ** -2.5, "noise_read": 1e-5},
                   {"sharpen_amount": 3.0, "sharpen_radius": 1.0}, {"jpeg_quality": 50}):
        assert not RANGES.holds(replace(p, **change)), change


def test_a_wide_share_draws_cameras_beyond_the_ranges_and_none_keeps_the_old_draws():
    from training.degradation import RANGES, WIDE
    assert all(draw_params(np.random.default_rng(i), wide_share=0.0)
               == draw_params(np.random.default_rng(i)) for i in range(20))
    wide = [draw_params(np.random.default_rng(i), wide_share=1.0) for i in range(200)]
    assert all(WIDE.holds(p) for p in wide)
    assert sum(not RANGES.holds(p) for p in wide) > 100
    half = [draw_params(np.random.default_rng(i), wide_share=0.5) for i in range(200)]
    assert 40 < sum(not RANGES.holds(p) for p in half) < 160


def test_the_soft_ranges_keep_the_wide_ones_without_their_sharp_end():
    """`--wide-ranges soft`: the same draws as WIDE but with the blur from RANGES' lower bound;
    the default stays WIDE, draw for draw."""
    from training.degradation import RANGES, SOFT, WIDE, WIDER_RANGES
    assert WIDER_RANGES == {"wide": WIDE, "soft": SOFT}
    assert all(draw_params(np.random.default_rng(i), wide_share=0.5)
               == draw_params(np.random.default_rng(i), wide_share=0.5, wide=WIDE)
               for i in range(20))
    soft = [draw_params(np.random.default_rng(i), wide_share=1.0, wide=SOFT) for i in range(200)]
    assert all(SOFT.holds(p) and WIDE.holds(p) for p in soft)
    assert min(p.blur_sigma_minor for p in soft) >= RANGES.blur_sigma[0]
    assert max(p.blur_sigma_major for p in soft) > RANGES.blur_sigma[1]
    assert sum(not RANGES.holds(p) for p in soft) > 100
    args = train.parse_args(["--wide-degradation", "0.25", "--wide-ranges", "soft"])
    assert (args.wide_degradation, args.wide_ranges) == (0.25, "soft")
    assert train.parse_args([]).wide_ranges == "wide"


def test_degradation_variants_leave_out_one_stage_each(rng):
    """The ablation's variants (`training.ablate_degradation`): each switches its stages off
    after the same draw, so runs differ only in what the variant names."""
    hr = _smooth_photo(rng, 90, 120)
    for seed in range(20):
        after_full = np.random.default_rng(seed)
        full = draw_params(after_full)
        for variant, stages in VARIANTS.items():
            r = np.random.default_rng(seed)
            p = draw_params(r, variant)
            # the same random numbers were drawn, whatever the variant
            assert r.bit_generator.state == after_full.bit_generator.state
            assert (p.blur_sigma_major == full.blur_sigma_major) == ("blur" in stages)
            assert (p.noise_shot == full.noise_shot) == ("noise" in stages or full.noise_shot == 0)
            assert (p.sharpen_amount == full.sharpen_amount) == (
                "sharpen" in stages or full.sharpen_amount == 0)
            assert (p.jpeg_quality == full.jpeg_quality) == (
                "jpeg" in stages or full.jpeg_quality == 0)
    lr, params = degrade(hr, 2.0, np.random.default_rng(3), variant="area-only")
    np.testing.assert_allclose(lr, resize(hr, scale=0.5, method="area"), atol=1e-6)
    assert params.blur_sigma_major == 0 and params.jpeg_quality == 0
    with pytest.raises(ValueError, match="unknown degradation"):
        draw_params(np.random.default_rng(0), "no-lens")


def test_degradation_ablation_trains_each_variant_once_and_scores_them(tmp_path, rng):
    from training import ablate_degradation

    photos = tmp_path / "photos"
    photos.mkdir()
    _save(photos / "p.png", _smooth_photo(rng, 120, 120))
    args = ["--photos", str(photos), "--synthetic", str(photos), "--scales", "2",
            "--variants", "area-only,no-jpeg", "--iterations", "2", "--lr-step", "1",
            "--batch", "2", "--patch", "16", "--queries", "64", "--runs", str(tmp_path / "runs"),
            "--json", str(tmp_path / "a.json")]
    assert ablate_degradation.main(args) == 0
    report = json.loads((tmp_path / "a.json").read_text())
    (row,) = report["results"]
    assert set(row["table"]) == {"bicubic", "area-only", "no-jpeg"}
    last = tmp_path / "runs" / "area-only" / "last.pt"
    assert torch.load(last, weights_only=True)["step"] == 2
    stamp = last.stat().st_mtime_ns
    assert ablate_degradation.main(args) == 0  # complete runs are not trained again
    assert last.stat().st_mtime_ns == stamp
    assert "| area-only |" in ablate_degradation.markdown(report)

    # A variant made later is added to the report; the earlier columns stay as they were.
    partial = [a if a != "area-only,no-jpeg" else "area-only" for a in args]
    assert ablate_degradation.main(partial) == 0
    assert set(json.loads((tmp_path / "a.json").read_text())["results"][0]["table"]) == {
        "bicubic", "area-only"}
    at = args.index("--variants")
    assert ablate_degradation.main([*args[:at], "--variants", "no-jpeg", *args[at + 2:],
                                    "--add"]) == 0
    (merged,) = json.loads((tmp_path / "a.json").read_text())["results"]
    assert merged["table"] == row["table"]
    other = {"iterations": 3, "seed": report["seed"], "results": report["results"]}
    with pytest.raises(SystemExit, match="iterations"):
        ablate_degradation.merge(report, other)


def test_degradation_keeps_tones(rng):
    """No draw shifts the photo's brightness or colour: the LR's low-pass matches the HR's
    area-downsampled low-pass to within noise and JPEG rounding (about a level of 255)."""
    hr = _smooth_photo(rng, 160, 160)
    for seed in range(12):
        lr, _ = degrade(hr, 2.0, np.random.default_rng(seed))
        reference = resize(hr, scale=0.5, method="area")
        low = resize(lr, scale=0.125, method="area")
        ref_low = resize(reference, scale=0.125, method="area")
        assert np.abs(low - ref_low).mean() * 255 < 1.5


def test_each_stage_does_what_it_says(rng):
    hr = rng.random((120, 120, 3)).astype(np.float32)
    clean = resize(hr, scale=0.5, method="area")
    neutral = dict(blur_sigma_major=1e-3, blur_sigma_minor=1e-3, blur_angle=0.0, noise_shot=0.0,
                   noise_read=0.0, sharpen_amount=0.0, sharpen_radius=1.0, jpeg_quality=0)
    from training.degradation import DegradationParams

    def run(**change):
        lr, _ = degrade(hr, 2.0, np.random.default_rng(0), DegradationParams(**{**neutral,
                                                                                 **change}))
        return lr

    np.testing.assert_allclose(run(), clean, atol=1e-5)  # neutral = plain area downsampling

    def detail(x):
        return np.abs(np.diff(x, axis=1)).mean()

    assert detail(run(blur_sigma_major=1.0, blur_sigma_minor=1.0)) < 0.7 * detail(clean)
    sharp = run(sharpen_amount=1.0)
    assert detail(sharp) > 1.2 * detail(clean)
    assert sharp.mean() == pytest.approx(clean.mean(), abs=0.01)
    assert np.abs(run(noise_shot=1e-3) - clean).std() > 0.01
    assert 0.003 < np.abs(run(jpeg_quality=75) - clean).mean() < 0.2


def test_gaussian_kernel():
    k = gaussian_kernel(2.0, 0.5, 0.0)
    assert k.sum() == pytest.approx(1.0, abs=1e-5)
    assert k.shape[0] % 2 == 1
    # wider along x than along y at angle 0
    centre = k.shape[0] // 2
    assert k[centre, centre + 2] > k[centre + 2, centre]
    np.testing.assert_allclose(k, k[::-1, ::-1], atol=1e-7)


def test_bad_scale_refused(rng):
    with pytest.raises(ValueError):
        degrade(_smooth_photo(rng, 20, 20), 1.0, rng)


# --- data geometry --------------------------------------------------------------------------

def test_hr_pixels_in_patch_geometry(rng):
    hr = rng.random((60, 60, 3)).astype(np.float32)
    s = 2.5
    coords, rgb = hr_pixels_in_patch(hr, (s, s), (4, 6), 10)
    assert coords.min() >= 0 and coords.max() < 10
    # Every HR pixel whose centre falls in the patch, and no other.
    j = np.arange(60)
    inside_y = ((j + 0.5) / s >= 4) & ((j + 0.5) / s < 14)
    inside_x = ((j + 0.5) / s >= 6) & ((j + 0.5) / s < 16)
    assert coords.shape[0] == inside_y.sum() * inside_x.sum()
    np.testing.assert_array_equal(rgb, hr[inside_y][:, inside_x].reshape(-1, 3))


def test_area_region_equals_whole_downsample(rng):
    image = (rng.random((57, 73, 3)) * 255).astype(np.uint8)
    factor = 2.7
    whole = resize(image.astype(np.float32) / 255, scale=1 / factor, method="area")
    np.testing.assert_allclose(area_region(image, factor, (3, 5), (12, 9)),
                               whole[3:15, 5:14], atol=1e-6)


def test_augment_moves_coordinates_with_the_patch(rng):
    from training.data import Sample

    lr = rng.random((8, 8, 3)).astype(np.float32)
    points = rng.random((50, 2)).astype(np.float32) * 8
    sample = Sample(lr, points, sample_bicubic(lr, points), (2.0, 3.0))
    for seed in range(8):
        out = augment(sample, np.random.default_rng(seed))
        # The LR patch sampled at the moved points still gives the same colours.
        np.testing.assert_allclose(sample_bicubic(out.lr, out.coords), sample.rgb, atol=1e-5)


def _city100_folder(tmp_path, rng, scenes=("001", "002", "003")):
    folder = tmp_path / "city"
    folder.mkdir()
    for scene in scenes:
        tele = _smooth_photo(rng, 200, 240)
        wide = resize(resize(tele, scale=1 / 2.4, method="area"), size=(200, 240)) * 0.9
        _save(folder / f"{scene}H.PNG", tele)
        _save(folder / f"{scene}L.PNG", wide)
    return folder


def test_sources_give_aligned_samples(tmp_path, rng):
    city = City100Source(_city100_folder(tmp_path, rng), exclude=("001",))
    assert len(city.pairs) == 2
    photos = tmp_path / "photos"
    photos.mkdir()
    _save(photos / "a.jpg", _smooth_photo(rng, 300, 300))
    synthetic = SyntheticSource([photos])
    realarbisr = tmp_path / "RealArbiSR" / "Train"
    for tag, s in (("2", 2.0), ("2dot5", 2.5)):
        (realarbisr / f"HR{tag}").mkdir(parents=True)
        (realarbisr / f"LR{tag}").mkdir(parents=True)
        hr = _smooth_photo(rng, 200, 200)
        _save(realarbisr / f"HR{tag}" / "scene1.png", hr)
        _save(realarbisr / f"LR{tag}" / "scene1.png", resize(hr, scale=1 / s, method="area"))
    real = RealArbiSRSource(tmp_path / "RealArbiSR")
    assert sorted(p[2] for p in real.pairs) == [(2.0, 2.0), (2.5, 2.5)]
    sample_rng = np.random.default_rng(0)
    for source in (city, synthetic, real):
        for _ in range(3):
            sample = source.sample(sample_rng, 24)
            assert sample.lr.shape == (24, 24, 3)
            assert sample.coords.min() >= 0 and sample.coords.max() < 24
            s = sample.scale[0]
            assert sample.coords.shape[0] == pytest.approx((24 * s) ** 2, rel=0.15)
    batch = Mixture([city, synthetic, real]).batch(sample_rng, 4, 24, 300)
    assert batch["lr"].shape == (4, 3, 24, 24)
    assert batch["coords"].shape == (*batch["hr"].shape[:2], 2)
    assert batch["bicubic"].shape == (4, 300, 3)


# --- a few real training steps --------------------------------------------------------------

def test_training_lowers_the_loss_and_writes_a_loadable_checkpoint(tmp_path, rng):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(2):
        _save(photos / f"p{i}.png", _smooth_photo(rng, 160, 160))
    out = tmp_path / "run"
    config = json.dumps({"model": "ddir", "encoder": {"n_resblocks": 1, "n_feats": 16},
                         "hidden": [32, 32]})
    args = ["--model", "ddir", "--config", config, "--photos", str(photos), "--iterations", "60",
            "--batch", "4", "--patch", "16", "--queries", "256", "--lr", "1e-3",
            "--val-every", "30", "--val-synthetic", str(photos), "--val-scales", "2",
            "--out", str(out), "--seed", "1"]
    assert train.main(args) == 0
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [30, 60]
    # loss of the first and last logged windows
    assert records[-1]["loss"] < records[0]["loss"]
    model, info = load_checkpoint(out / "best.safetensors")
    assert info["iterations"] in (30, 60) and "photos" in info["command"]
    image = upscale_image(model, _smooth_photo(rng, 20, 24), 2.3)
    assert image.shape == (46, 55, 3) and np.isfinite(image).all()

    # resume continues from the saved step, on the schedule the run started with, and keeps
    # every setting it is not given (validation every 30 steps, not the default 1000)
    assert train.main(["--resume", str(out / "last.pt"), "--iterations", "70"]) == 0
    state = torch.load(out / "last.pt", weights_only=True)
    assert state["step"] == 70 and state["args"]["lr_step"] == 12
    assert state["args"]["val_every"] == 30 and state["args"]["iterations"] == 70

    # --max-hours counts this process's time, not the run's: a resume in a later session gets
    # its hours anew (here the saved run had already trained 10 h)
    state["elapsed"] = 10 * 3600.0
    torch.save(state, out / "last.pt")
    assert train.main(["--resume", str(out / "last.pt"), "--iterations", "75",
                       "--max-hours", "1"]) == 0
    assert torch.load(out / "last.pt", weights_only=True)["step"] == 75

    # the model file records the command that started the run and each resume, in order
    _, info = read_header(out / "last.safetensors")
    assert "--photos" in info["command"] and "--resume" not in info["command"]
    assert [c.split("--iterations ")[1][:2] for c in info["resumed"]] == ["70", "75"]
    assert "Resumed with:" in report.model_card(out / "last.safetensors", "DDIR", None, None)

    # the model card tells the checkpoint's own record and the run's validation history
    card = report.model_card(out / "best.safetensors", "DDIR", out / "log.jsonl", None)
    _, info = read_header(out / "best.safetensors")
    assert f"| iterations (this checkpoint) | {info['iterations']} |" in card
    assert [card.count(f"\n| {step} | ") for step in (30, 60, 70)] == [1, 1, 1]
    # rows its run logged after writing it say so (the run trained on past the shipped file)
    later = [line for line in card.splitlines() if line.endswith("(after this file) |")]
    assert [line.split(" | ")[0] for line in later] == [
        f"| {step}" for step in (30, 60, 70) if step > info["iterations"]]
    # a run continued in stages: a table for each log, in order
    stages = report.model_card(out / "best.safetensors", "DDIR",
                               [out / "log.jsonl", out / "log.jsonl"], None)
    assert stages.count("Validation during the run") == 2
    assert [stages.count(f"\n| {step} | ") for step in (30, 60, 70)] == [2, 2, 2]


# --- evaluation -----------------------------------------------------------------------------

def test_metrics_match_direct_computation(rng):
    a = rng.random((30, 40, 3))
    b = np.clip(a + rng.normal(0, 0.02, a.shape), 0, 1)
    ya, yb = rgb_to_y(a)[3:-3, 3:-3], rgb_to_y(b)[3:-3, 3:-3]
    expected = 10 * np.log10(255**2 / np.mean((ya - yb) ** 2))
    assert psnr_y(b, a, 3) == pytest.approx(expected)
    assert ssim_y(a, a, 0) == pytest.approx(1.0)
    assert ssim_y(b, a, 2) < 1.0
    assert [shave_for_scale(s) for s in (1.5, 2.0, 2.3, 3.0, 3.3, 4.0)] == [2, 2, 3, 3, 4, 4]
    with pytest.raises(ValueError, match="different sizes"):
        psnr_y(a, a[:-1], 2)


def test_pairing_by_name_handles_both_styles(tmp_path):
    lr = [tmp_path / n for n in ("img_001_LR4.png", "img_002_LR4.png", "same.png", "lonely.png")]
    hr = [tmp_path / n for n in ("img_001_HR.png", "img_002_HR.png", "same.png", "other.png")]
    pairs, unpaired = evaluate.pair_by_name(lr, hr)
    assert {(a.name, b.name) for a, b in pairs} == {
        ("img_001_LR4.png", "img_001_HR.png"), ("img_002_LR4.png", "img_002_HR.png"),
        ("same.png", "same.png")}
    assert sorted(p.name for p in unpaired) == ["lonely.png", "other.png"]


def test_evaluation_of_a_tiny_pair_equals_direct_psnr(tmp_path, rng):
    folder = tmp_path / "pairs"
    (folder / "LR").mkdir(parents=True)
    (folder / "HR").mkdir(parents=True)
    hr = _smooth_photo(rng, 45, 60)
    lr = resize(hr, size=(15, 20), method="area")
    _save(folder / "HR" / "scene_HR.png", hr)
    _save(folder / "LR" / "scene_LR3.png", lr)
    json_path = tmp_path / "r.json"
    assert evaluate.main(["--pairs", str(folder), "--json", str(json_path)]) == 0
    report = json.loads(json_path.read_text())
    (result,) = report["results"]
    assert result["scale"] == 3.0
    hr8, lr8 = load_photo(folder / "HR" / "scene_HR.png").rgb, \
        load_photo(folder / "LR" / "scene_LR3.png").rgb
    direct = psnr_y(np.clip(resize(lr8, scale=3.0), 0, 1), hr8, 3)
    assert result["table"]["bicubic"]["psnr"] == pytest.approx(direct, abs=1e-6)


def test_evaluation_refuses_misaligned_sizes(tmp_path, rng):
    pair = evaluate.Pair("x", np.zeros((10, 10, 3)), np.zeros((30, 26, 3)), (3.0, 3.0))
    with pytest.raises(ValueError, match="wrong scale"):
        evaluate.check_alignment(pair)
    # within rounding (an LR of round(H / s) pixels) is fine
    evaluate.check_alignment(evaluate.Pair("y", np.zeros((138, 138, 3)),
                                           np.zeros((512, 512, 3)), (3.7, 3.7)))


def test_city100_and_synthetic_evaluation_pairs(tmp_path, rng):
    folder = _city100_folder(tmp_path, rng)
    pairs = evaluate.city100_pairs(folder, ["001"], 2.4)
    assert pairs[0].lr.shape == (83, 100, 3) and pairs[0].hr.shape == (200, 240, 3)
    photos = tmp_path / "hr"
    photos.mkdir()
    _save(photos / "a.png", _smooth_photo(rng, 64, 64))
    first = evaluate.synthetic_pairs(photos, 2.3, seed=0)
    again = evaluate.synthetic_pairs(photos, 2.3, seed=0)
    assert np.array_equal(first[0].lr, again[0].lr)
    assert first[0].lr.shape == (28, 28, 3)


def _tiny_run(tmp_path, rng, model):
    """A folder with one photo, a run folder and a tiny config: a run of a few seconds."""
    photos = tmp_path / "photos"
    photos.mkdir()
    _save(photos / "p.png", _smooth_photo(rng, 120, 120))
    config = json.dumps({"model": model, "encoder": {"n_resblocks": 1, "n_feats": 8},
                         "hidden": [16]})
    return photos, tmp_path / "run", config


def test_an_interrupted_run_saves_and_resumes(tmp_path, rng, monkeypatch):
    photos, out, config = _tiny_run(tmp_path, rng, "liif")
    real_batch = train.Mixture.batch
    calls = []

    def batch_then_interrupt(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 5:
            import os
            import signal
            os.kill(os.getpid(), signal.SIGINT)  # as Ctrl+C would
        return real_batch(self, *args, **kwargs)

    monkeypatch.setattr(train.Mixture, "batch", batch_then_interrupt)
    args = ["--model", "liif", "--config", config, "--photos", str(photos), "--iterations",
            "50", "--batch", "2", "--patch", "16", "--queries", "64", "--val-every", "100",
            "--out", str(out)]
    assert train.main(args) == 0
    state = torch.load(out / "last.pt", weights_only=True)
    assert state["step"] == 5
    monkeypatch.setattr(train.Mixture, "batch", real_batch)
    assert train.main(["--resume", str(out / "last.pt"), "--iterations", "8"]) == 0
    assert torch.load(out / "last.pt", weights_only=True)["step"] == 8


def test_a_packed_state_keeps_the_weights_to_ship_and_resumes(tmp_path, rng):
    # training.resume_pack keeps what a later session needs of a long run, small enough to
    # commit: the weights it would ship (the average with --ema), exact, and where it stands.
    from training import resume_pack

    photos, out, config = _tiny_run(tmp_path, rng, "ddir")
    start = tmp_path / "start.safetensors"
    save_checkpoint(make_model(json.loads(config)), start, {})
    assert train.main(["--model", "ddir", "--config", config, "--photos", str(photos),
                       "--iterations", "5", "--batch", "2", "--patch", "16", "--queries", "64",
                       "--val-every", "100", "--lr", "1e-3", "--threads", "1", "--ema", "0.5",
                       "--init", str(start), "--out", str(out)]) == 0
    whole, packed = tmp_path / "whole.pt", tmp_path / "packed.pt"
    whole.write_bytes((out / "last.pt").read_bytes())
    assert resume_pack.main([str(whole), str(packed)]) == 0
    state, small = (torch.load(f, weights_only=True) for f in (whole, packed))
    assert "optimizer" not in small and "ema" not in small
    assert packed.stat().st_size < 0.5 * whole.stat().st_size
    for name, value in state["ema"].items():
        assert torch.equal(small["model"][name], value)
    assert small["step"] == state["step"] == 5 and small["rng"] == state["rng"]
    assert small["args"] == state["args"]
    assert not list(tmp_path.rglob("*.part"))  # every state and model file was moved into place

    # the resume starts from those weights, Adam afresh, and trains on
    assert train.main(["--resume", str(packed), "--iterations", "8"]) == 0
    resumed = torch.load(out / "last.pt", weights_only=True)
    assert resumed["step"] == 8 and "optimizer" in resumed
    # its model file tells where the run started, how, and how it was resumed
    _, info = read_header(out / "last.safetensors")
    assert info["init"] == "start.safetensors" and "--ema 0.5" in info["command"]
    assert info["resumed"] == [f"python -m training.train --resume {packed} --iterations 8"]
    moved = [(resumed["model"][k] - v).abs().max() for k, v in small["model"].items()]
    assert max(moved) > 0


def test_the_weight_average_follows_its_formula():
    from training.averaging import WeightAverage

    model = torch.nn.Linear(3, 2)
    average = WeightAverage(model, 0.75)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    average.update(model)
    for name, value in average.state_dict().items():
        assert torch.allclose(value, 0.75 * before[name] + 0.25 * (before[name] + 1.0))
    assert all(not p.requires_grad for p in average.model.parameters())
    for bad in (0.0, 1.0, -0.5):
        with pytest.raises(ValueError):
            WeightAverage(model, bad)


def test_a_run_with_ema_validates_and_keeps_the_average(tmp_path, rng):
    photos, out, config = _tiny_run(tmp_path, rng, "ddir")
    val = tmp_path / "val"
    val.mkdir()
    _save(val / "v.png", _smooth_photo(rng, 48, 48))
    common = ["--model", "ddir", "--config", config, "--photos", str(photos), "--batch", "2",
              "--patch", "16", "--queries", "64", "--val-synthetic", str(val), "--val-scales",
              "2", "--val-every", "4", "--lr", "1e-3", "--threads", "1", "--out", str(out)]
    assert train.main([*common, "--iterations", "4"]) == 0
    assert "ema" not in torch.load(out / "last.pt", weights_only=True)
    # switched on at a resume: the average starts from the weights there
    assert train.main(["--resume", str(out / "last.pt"), "--iterations", "8", "--ema", "0.5"]) == 0
    state = torch.load(out / "last.pt", weights_only=True)
    assert state["args"]["ema"] == 0.5 and "ema" in state
    gaps = [(state["ema"][k] - v).abs().max() for k, v in state["model"].items()]
    assert max(gaps) > 0  # the average lags the weights
    # a run's first validation always improves: best.safetensors is then the average
    fresh = tmp_path / "fresh"
    assert train.main([*common[:-1], str(fresh), "--iterations", "4", "--ema", "0.5"]) == 0
    state = torch.load(fresh / "last.pt", weights_only=True)
    best, info = load_checkpoint(fresh / "best.safetensors")
    assert info["ema"] == 0.5 and info["iterations"] == 4
    for name, value in best.state_dict().items():
        assert torch.equal(value, state["ema"][name])
        assert not torch.equal(value, state["model"][name]), name
    # last.safetensors: the model where the run stopped (the average), validated at that step
    last, info = load_checkpoint(fresh / "last.safetensors")
    assert info["iterations"] == 4 and info["ema"] == 0.5 and "validation_psnr_y" in info
    for name, value in last.state_dict().items():
        assert torch.equal(value, state["ema"][name])
    # scores only where the stopping step was validated
    assert train.main(["--resume", str(fresh / "last.pt"), "--iterations", "6",
                       "--val-every", "4"]) == 0
    _, info = load_checkpoint(fresh / "last.safetensors")
    assert info["iterations"] == 6 and "validation_psnr_y" in info  # step 6 = the last: validated
    assert train.main(["--resume", str(fresh / "last.pt"), "--iterations", "6"]) == 0
    _, info = load_checkpoint(fresh / "last.safetensors")
    assert info["iterations"] == 6 and "validation_psnr_y" not in info  # nothing trained


def test_report_checks_the_bar_row_by_row():
    def table(d, li, b, tone_ok=True):
        rows = {m: {"psnr": v, "ssim": 0.5, "images": 5, "tone_mad_255": 0.1,
                    "tone_gain_error": 0.001, "tone_contrast_255": 0.2, "tone_ok": True}
                for m, v in (("bicubic", b), ("LIIF", li), ("DDIR", d))}
        rows["DDIR"]["tone_ok"] = tone_ok
        return rows
    quality = {"results": [
        {"dataset": "City100 iPhone X (real)", "scale": 2.4, "table": table(25.0, 24.9, 24.3)},
        {"dataset": "City100 iPhone X (real)", "scale": 2.4, "table": table(24.9, 24.9, 24.3)},
        {"dataset": "set14 (synthetic)", "scale": 3, "table": table(23.1, 23.0, 22.0)},
        {"dataset": "set14 (synthetic)", "scale": 3.7, "table": table(23.0, 22.0, 23.5)},
        {"dataset": "b100 (synthetic)", "scale": 3.7, "table": table(23.0, 22.0, 22.0, False)},
    ]}
    holds = [h for _, h in report.bar_check(quality, "DDIR", ("bicubic", "LIIF"))]
    assert holds == [True, False, True, False, False]
    text = report.quality_markdown(quality, "DDIR", ("bicubic", "LIIF"))
    assert "| City100 iPhone X (real) x2.4 | 5 | 24.30 / 0.5000 | 24.90 / 0.5000 | " \
           "**25.00** / 0.5000 |" in text
    assert text.count("does not hold") == 3
    assert "0.10 / 0.20 **shifted**" in text


def test_scores_are_kept_per_image_and_a_report_counts_the_images_made_worse(rng):
    hr = _smooth_photo(rng, 48, 48)
    lr = resize(hr, scale=0.5, method="area")
    pairs = [evaluate.Pair("a", lr, hr, (2.0, 2.0)), evaluate.Pair("b", lr * 0.5, hr, (2.0, 2.0)),
             evaluate.Pair("a", lr, hr, (2.0, 2.0))]  # a repeated name stays apart
    table = evaluate.score(pairs, {"bicubic": evaluate.bicubic_method})["bicubic"]
    per_image = table["per_image_psnr"]
    assert list(per_image) == ["a", "b", "a#2"]
    assert per_image["a"] == per_image["a#2"] > per_image["b"]  # a darkened input scores lower
    assert np.isclose(np.mean(list(per_image.values())), table["psnr"])

    def row(ddir, bicubic):
        return {"dataset": "City100 iPhone X (real)", "scale": 2.4, "table": {
            m: {"psnr": float(np.mean(list(v.values()))), "ssim": 0.5, "images": len(v),
                "per_image_psnr": v} for m, v in (("bicubic", bicubic), ("DDIR", ddir))}}
    older = row({"x": 25.0}, {"x": 24.5})
    del older["table"]["bicubic"]["per_image_psnr"]  # scored before per-image figures: left out
    quality = {"results": [row({"x": 25.0, "y": 24.0}, {"x": 24.5, "y": 24.2}),
                           row({"x": 25.0, "y": 24.5}, {"x": 24.5, "y": 24.2}), older]}
    checks = report.per_image_check(quality)
    assert [every for _, every in checks] == [False, True]
    assert checks[0][0].endswith("above bicubic on 1 of 2 images, least -0.20 dB (y)")
    text = report.quality_markdown(quality)
    assert "least +0.30 dB (y)" in text and text.count("(not every image)") == 1


def test_report_compare_ships_only_a_candidate_better_everywhere():
    def report_of(method, psnrs, tone_ok=True, photos_ok=True):
        rows = [{"dataset": "set14 (synthetic)", "scale": s,
                 "table": {method: {"psnr": v, "ssim": 0.5, "images": 14, "tone_mad_255": 0.5,
                                    "tone_gain_error": 0.002, "tone_contrast_255": 0.4,
                                    "tone_ok": tone_ok}}} for s, v in psnrs.items()]
        photos = {"folder": "b100", "table": {method: {
            "images": 8, "scales": [1.5, 8], "tone_mad_255": 0.4, "tone_gain_error": 0.002,
            "tone_contrast_255": 0.3 if photos_ok else 3.0, "tone_ok": photos_ok}}}
        return {"models": {method: {}}, "results": rows, "tone": [photos]}
    shipped = report_of("DDIR", {2: 30.0, 3: 27.0})
    better = report_of("DDIR", {2: 30.1, 3: 27.05})
    assert report.compare(shipped, better)[1]
    assert not report.compare(shipped, report_of("DDIR", {2: 30.1, 3: 27.0}))[1]  # a tie
    assert not report.compare(shipped, report_of("DDIR", {2: 30.1}))[1]  # a row not measured
    assert not report.compare(shipped, report_of("DDIR", {2: 30.1, 3: 27.1}, tone_ok=False))[1]
    text, ship = report.compare(shipped, report_of("DDIR", {2: 30.1, 3: 27.1}, photos_ok=False))
    assert not ship and "**shifted**" in text
    assert not report.compare({"results": []}, better)[1]  # nothing to compare with
    untested = report_of("DDIR", {2: 30.1, 3: 27.05})
    del untested["results"][1]["table"]["DDIR"]["tone_ok"]
    assert not report.compare(shipped, untested)[1]  # a row whose tones were not checked
    # A candidate recorded under another name; the command line's exit status is the decision.
    assert report.compare(shipped, report_of("new", {2: 30.1, 3: 27.05}), "DDIR", "new")[1]
    assert "| set14 (synthetic) x3 | 27.00 | 27.05 | +0.05 |" in report.compare(shipped, better)[0]
    # With a tolerance a row may lose up to that much, not more; tones still decide.
    slightly_lower = report_of("DDIR", {2: 30.1, 3: 26.92})
    assert not report.compare(shipped, slightly_lower)[1]
    text, ship = report.compare(shipped, slightly_lower, tolerance=0.10)
    assert ship and "within 0.10 dB on all 2 rows" in text
    text, ship = report.compare(shipped, report_of("DDIR", {2: 30.1, 3: 26.85}), tolerance=0.10)
    assert not ship and "-0.15 **loses > 0.10**" in text
    assert not report.compare(shipped, report_of("DDIR", {2: 30.1, 3: 27.1}, tone_ok=False),
                              tolerance=0.10)[1]


def test_report_compare_command_exits_by_its_decision(tmp_path, capsys):
    def write(name, psnr):
        path = tmp_path / name
        path.write_text(json.dumps({"results": [{"dataset": "b100", "scale": 3, "table": {
            "DDIR": {"psnr": psnr, "ssim": 0.5, "images": 3, "tone_mad_255": 0.3,
                     "tone_contrast_255": 0.2, "tone_ok": True}}}]}))
        return str(path)
    old, good, bad = write("old.json", 26.0), write("good.json", 26.2), write("bad.json", 25.9)
    assert report.main(["compare", "--shipped", old, "--candidate", good]) == 0
    assert "Ship: gains on all 1 rows" in capsys.readouterr().out
    assert report.main(["compare", "--shipped", old, "--candidate", bad]) == 1
    assert "1 row(s) without gain" in capsys.readouterr().out
    close = write("close.json", 25.92)
    assert report.main(["compare", "--shipped", old, "--candidate", close,
                        "--tolerance", "0.10"]) == 0
    assert "Ship: within 0.10 dB on all 1 rows" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        report.main(["compare", "--shipped", old, "--candidate", bad, "--tolerance", "-1"])
    capsys.readouterr()
    assert report.main(["compare", "--shipped", old, "--candidate", bad,
                        "--tolerance", "0.05"]) == 1
    assert "1 row(s) losing more than 0.05 dB" in capsys.readouterr().out


def test_report_merges_evaluations_run_apart():
    def result(dataset, scale, **psnr):
        return {"dataset": dataset, "scale": scale,
                "table": {m: {"psnr": v, "ssim": 0.5, "images": 3} for m, v in psnr.items()}}
    first = {"models": {"LIIF": {}}, "results": [result("set14", 2, bicubic=20.0, LIIF=21.0),
                                                result("b100", 3, bicubic=19.0, LIIF=19.5)]}
    second = {"models": {"DDIR": {}}, "results": [result("set14", 2, DDIR=21.5)]}
    merged = report.merge([first, second])
    assert [r["dataset"] for r in merged["results"]] == ["set14", "b100"]
    assert set(merged["results"][0]["table"]) == {"bicubic", "LIIF", "DDIR"}
    text = report.quality_table(merged)
    assert "| b100 x3 | 3 | 19.00 / 0.5000 | **19.50** / 0.5000 | - |" in text


def test_distillation_targets_are_the_teachers_outputs(tmp_path, rng):
    """With --teacher, each loss term's target is the teacher's output for its share: a student
    equal to its teacher has no loss left at share 1, and the HR term's loss at share 0."""
    photos = tmp_path / "photos"
    photos.mkdir()
    _save(photos / "p.png", _smooth_photo(rng, 160, 160))
    batch = Mixture([SyntheticSource([photos])]).batch(np.random.default_rng(0), 2, 16, 128,
                                                       deformation_target=True)
    torch.manual_seed(0)
    model = make_model({"model": "ddir", "encoder": {"n_resblocks": 1, "n_feats": 8},
                        "hidden": [16]})
    alone, alone_parts = train.loss_fn(model, batch)
    taught, _ = train.loss_fn(model, batch, teacher=model, teacher_share=1.0)
    assert float(taught.detach()) == pytest.approx(0.0, abs=1e-7) and float(alone.detach()) > 0.01
    half, _ = train.loss_fn(model, batch, teacher=model, teacher_share=0.5)
    assert float(half.detach()) == pytest.approx(0.5 * float(alone.detach()), rel=1e-5)
    _, hr_parts = train.loss_fn(model, batch, teacher=model, teacher_share=0.0)
    assert hr_parts == pytest.approx(alone_parts)

    out = tmp_path / "student"
    weights = tmp_path / "teacher.safetensors"
    save_checkpoint(model, weights, {})
    args = ["--model", "ddir", "--config", json.dumps(model.config), "--photos", str(photos),
            "--iterations", "4", "--batch", "2", "--patch", "16", "--queries", "128",
            "--val-every", "4", "--teacher", str(weights), "--teacher-share", "0.75",
            "--out", str(out)]
    assert train.main(args) == 0
    _, info = load_checkpoint(out / "best.safetensors")
    assert info["teacher"] == "teacher.safetensors" and info["teacher_share"] == 0.75


def test_report_relabel_records_the_shipped_file_only_if_it_renders_the_same(tmp_path, capsys):
    from training import ship

    torch.manual_seed(0)
    model = make_model({"model": "ddir", "encoder": {"n_resblocks": 1, "n_feats": 8},
                        "hidden": [16]})
    run = save_checkpoint(model, tmp_path / "last.safetensors", {"iterations": 5})
    scratch, shipped = tmp_path / "scratch.safetensors", tmp_path / "shipped.safetensors"
    assert ship.main([str(run), str(scratch), "--tone-anchor", "--tone-anchor-sigma", "1.25"]) == 0
    assert ship.main([str(run), str(shipped), "--tone-anchor", "--tone-anchor-sigma", "1.25"]) == 0
    scored = {"models": {"DDIR": {"file": str(scratch), "precision": "float32"}}, "results": []}
    result = tmp_path / "q.json"
    result.write_text(json.dumps(scored))
    assert report.main(["relabel", str(result), "--file", str(shipped)]) == 0
    entry = json.loads(result.read_text())["models"]["DDIR"]
    assert entry["file"] == str(shipped) and str(scratch) in entry["evaluated_as"]
    assert entry["precision"] == "float32"
    # Another sigma, another tensor, or the anchor off: refused, and the JSON left as it was.
    assert ship.main([str(run), str(shipped), "--tone-anchor", "--force"]) == 0
    assert ship.differences(scratch, shipped) == ["tone_anchor_sigma: 1.25 != None"]
    result.write_text(json.dumps(scored))
    assert report.main(["relabel", str(result), "--file", str(shipped)]) == 1
    assert "tone_anchor_sigma" in capsys.readouterr().err
    assert json.loads(result.read_text()) == scored
    with torch.no_grad():
        next(iter(model.parameters()))[0] += 1e-6
    save_checkpoint(model, shipped, {"tone_anchor": True, "tone_anchor_sigma": 1.25})
    assert [d for d in ship.differences(scratch, shipped) if "differs" in d]
    assert report.main(["relabel", str(result), "--file", str(shipped), "--method", "LIIF"]) == 1


def test_camera_sweep_scores_each_profile_against_bicubic(tmp_path, rng):
    """Each profile degrades the same crops the same way for every method; the gain and the
    count of crops below bicubic follow from the per-image scores."""
    from training import camera_sweep
    for i in range(2):
        _save(tmp_path / f"{i}.png", _smooth_photo(rng, 40, 52))
    images = sorted(tmp_path.glob("*.png"))
    sharp = camera_sweep.PROFILES["sharp prime (RAW)"]
    a = camera_sweep.profile_pairs(images, sharp, 2.0, crop=32)
    b = camera_sweep.profile_pairs(images, sharp, 2.0, crop=32)
    assert [p.hr.shape[:2] for p in a] == [(32, 32)] * 2 and a[0].lr.shape == (16, 16, 3)
    assert all(np.array_equal(x.lr, y.lr) for x, y in zip(a, b, strict=True))

    def darker(lr, scale, shape):  # worse than bicubic on every crop
        return evaluate.bicubic_method(lr, scale, shape) * 0.8
    profiles = {k: camera_sweep.PROFILES[k] for k in ("sharp prime (RAW)", "high ISO")}
    rows = camera_sweep.sweep(images, {"bicubic": evaluate.bicubic_method, "DDIR": darker},
                              [2.0], crop=32, profiles=profiles, log=lambda _: None)
    assert [r["profile"] for r in rows] == list(profiles)
    assert [r["inside_training_ranges"] for r in rows] == [True, False]
    for r in rows:
        ddir, bicubic = r["methods"]["DDIR"], r["methods"]["bicubic"]
        assert ddir["images_below_bicubic"] == 2 and bicubic["images_below_bicubic"] == 0
        assert np.isclose(ddir["gain_db"], ddir["psnr"] - bicubic["psnr"]) and ddir["gain_db"] < 0
    table = camera_sweep.markdown(rows, ["bicubic", "DDIR"])
    assert "| high ISO * | x2 |" in table and " (2/2; -" in table

    # A second sweep of the same crops adds its method beside the first's; other crops refused.
    other = [{**r, "methods": {"bicubic": r["methods"]["bicubic"], "B": r["methods"]["DDIR"]}}
             for r in rows]
    merged, methods = camera_sweep.merge([{"methods": ["bicubic", "DDIR"], "rows": rows},
                                          {"methods": ["bicubic", "B"], "rows": other}])
    assert methods == ["bicubic", "DDIR", "B"] and list(merged[0]["methods"]) == methods
    other[0]["methods"]["bicubic"] = {**other[0]["methods"]["bicubic"], "psnr": 0.0}
    with pytest.raises(ValueError, match="bicubic figures differ"):
        camera_sweep.merge([{"methods": ["bicubic", "DDIR"], "rows": rows},
                            {"methods": ["bicubic", "B"], "rows": other}])
    # One name with the same figures twice (LIIF in two sweeps) merges; other figures do not.
    again, _ = camera_sweep.merge([{"methods": ["bicubic", "DDIR"], "rows": rows},
                                   {"methods": ["bicubic", "DDIR"], "rows": rows}])
    assert again == merged_first(rows)
    renamed = [{**r, "methods": {"bicubic": r["methods"]["bicubic"],
                                 "DDIR": {**r["methods"]["DDIR"], "psnr": 99.0}}} for r in rows]
    with pytest.raises(ValueError, match="'DDIR' has different figures"):
        camera_sweep.merge([{"methods": ["bicubic", "DDIR"], "rows": rows},
                            {"methods": ["bicubic", "DDIR"], "rows": renamed}])


def merged_first(rows: list[dict]) -> list[dict]:
    """What merging one sweep alone gives: its rows, each with its own methods."""
    return [{**r, "methods": dict(r["methods"])} for r in rows]


def test_camera_sweep_compare_refuses_a_candidate_that_loses_on_any_profile(tmp_path):
    """The sweep's shipping rule: a candidate may gain anywhere but lose no more than
    TOLERANCE_DB on any profile and scale; a profile it was not measured on counts as lost."""
    from training import camera_sweep

    def report(method: str, changes: list[float]) -> dict:
        rows = [{"profile": p, "inside_training_ranges": True, "scale": 2.0,
                 "methods": {"bicubic": {"psnr": 25.0}, method: {"psnr": 27.0 + c}}}
                for p, c in zip(("sharp", "soft", "noisy"), changes, strict=True)]
        return {"methods": ["bicubic", method], "rows": rows}

    shipped = report("DDIR", [0.0, 0.0, 0.0])
    table, ship = camera_sweep.compare(shipped, report("C", [+0.5, -0.04, 0.0]))
    assert ship and "| soft | x2 | 27.00 | 26.96 | -0.040 |" in table
    table, ship = camera_sweep.compare(shipped, report("C", [+0.5, -0.06, 0.0]))
    assert not ship and "-0.060 **loses**" in table and "1 row(s)" in table
    partial = report("C", [0.1, 0.1, 0.1])
    partial["rows"] = partial["rows"][:2]
    assert not camera_sweep.compare(shipped, partial)[1]
    for name, rep in (("shipped.json", shipped), ("c.json", report("C", [0.0, 0.0, -0.2]))):
        (tmp_path / name).write_text(json.dumps(rep))
    assert camera_sweep.main(["--compare", str(tmp_path / "shipped.json"),
                              str(tmp_path / "c.json")]) == 1
    # A candidate under the shipped model's own name is compared, not taken for the shipped one.
    table, ship = camera_sweep.compare(shipped, report("DDIR", [0.0, -0.2, 0.0]))
    assert not ship and "| soft | x2 | 27.00 | 26.80 | -0.200 **loses**" in table
    assert camera_sweep.compare(shipped, report("DDIR", [0.0, 0.01, 0.0]))[1]
    other_crops = report("C", [0.0, 0.0, 0.0])
    other_crops["rows"][0]["methods"]["bicubic"] = {"psnr": 24.0}
    with pytest.raises(ValueError, match="bicubic figures differ"):
        camera_sweep.compare(shipped, other_crops)
