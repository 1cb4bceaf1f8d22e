"""The command line: same pixels as the engine's export, batches with failures, no overwrites."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from ddir_zoom.cli import main
from ddir_zoom.engine import Engine
from ddir_zoom.engine.export import export_region
from ddir_zoom.imaging import load_photo
from ddir_zoom.models import make_model, save_checkpoint


@pytest.fixture
def photo(tmp_path, rng):
    y, x = np.mgrid[0:37, 0:53] / 9.0
    rgb = np.stack([np.sin(x + y), np.cos(2 * x), np.sin(3 * y)], -1) * 0.4 + 0.5
    path = tmp_path / "small.png"
    Image.fromarray((rgb * 255).astype(np.uint8)).save(path)
    return path


@pytest.fixture
def weights(tmp_path):
    torch.manual_seed(0)
    model = make_model({"model": "ddir", "encoder": {"n_resblocks": 1, "n_feats": 8},
                        "hidden": [16]})
    return save_checkpoint(model, tmp_path / "tiny_ddir.safetensors")


def test_non_integer_scale_gives_the_engines_export(tmp_path, photo, weights):
    out = tmp_path / "out.png"
    assert main(["upscale", str(photo), "--scale", "2.3", "--weights", str(weights),
                 "-o", str(out), "--quiet"]) == 0
    result = load_photo(out).rgb
    assert result.shape == (85, 122, 3)  # 37 * 2.3 = 85.1, 53 * 2.3 = 121.9
    engine = Engine.open(photo, device="cpu")
    engine.add_model("ddir", weights)
    reference = tmp_path / "reference.png"
    export_region(engine, reference, "ddir", scale=2.3)
    np.testing.assert_array_equal(result, load_photo(reference).rgb)


def test_exact_size_crop_and_bicubic(tmp_path, photo):
    out = tmp_path / "out.tif"
    assert main(["upscale", str(photo), "--size", "200x100", "--crop", "10,5,20,10",
                 "--method", "bicubic", "-o", str(out), "--quiet"]) == 0
    assert load_photo(out).rgb.shape == (100, 200, 3)
    engine = Engine.open(photo, device="cpu")
    direct = engine.render_region("bicubic", (10.0, 10.0), (50.0, 100.0), (100, 200))
    assert np.abs(load_photo(out).rgb - direct).max() <= 0.5 / 255 + 1e-6


def test_batch_reports_a_bad_file_and_goes_on(tmp_path, photo, capsys):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff not a jpeg")
    second = tmp_path / "second.png"
    second.write_bytes(photo.read_bytes())
    folder = tmp_path / "upscaled"
    code = main(["upscale", str(photo), str(bad), str(second), "--scale", "2",
                 "--method", "bicubic", "-o", str(folder), "--quiet"])
    assert code == 1
    assert sorted(p.name for p in folder.iterdir()) == ["second_x2.png", "small_x2.png"]
    err = capsys.readouterr().err
    assert "failed" in err and "bad.jpg" in err and "1 of 3 files failed" in err


def test_existing_output_is_kept_without_force(tmp_path, photo, capsys):
    out = tmp_path / "out.png"
    out.write_bytes(b"precious")
    assert main(["upscale", str(photo), "--scale", "2", "--method", "bicubic", "-o",
                 str(out), "--quiet"]) == 1
    assert out.read_bytes() == b"precious"
    assert "--force" in capsys.readouterr().err
    assert main(["upscale", str(photo), "--scale", "2", "--method", "bicubic", "-o",
                 str(out), "--force", "--quiet"]) == 0
    assert load_photo(out).rgb.shape == (74, 106, 3)


def test_bad_arguments_are_explained(tmp_path, photo, capsys):
    with pytest.raises(SystemExit) as info:
        main(["upscale", str(photo), "-o", str(tmp_path / "x.png")])  # no --scale or --size
    assert info.value.code == 2
    with pytest.raises(SystemExit):
        main(["upscale", str(photo), "--scale", "100", "-o", str(tmp_path / "x.png")])
    assert "between 0.05 and 32" in capsys.readouterr().err
    assert main(["upscale", str(photo), "--scale", "2", "--weights",
                 str(tmp_path / "none.safetensors"), "-o", str(tmp_path / "x.png")]) == 2
    assert main(["upscale", str(photo), "--scale", "2", "--method", "bicubic",
                 "-o", str(tmp_path / "x.gif")]) == 2


def test_model_kind_must_match_the_weights(tmp_path, photo, weights, capsys):
    assert main(["upscale", str(photo), "--scale", "2", "--method", "liif", "--weights",
                 str(weights), "-o", str(tmp_path / "x.png"), "--quiet"]) == 2
    assert "not 'liif'" in capsys.readouterr().err


def test_help_explains_every_option():
    result = subprocess.run([sys.executable, "-m", "ddir_zoom", "upscale", "--help"],
                            capture_output=True, text=True, check=True)
    for option in ("--scale", "--size", "--method", "--weights", "--crop", "--device",
                   "--output", "--force", "--format", "--quality", "--no-metadata"):
        assert option in result.stdout
