"""Model files: round trip, and a clear error for every way a file can be wrong."""

import json

import pytest
import torch
from safetensors.torch import save_file

from ddir_zoom.models import CheckpointError, load_checkpoint, make_model, save_checkpoint
from ddir_zoom.models.checkpoint import read_header

CONFIG = {"model": "ddir", "encoder": {"n_resblocks": 1, "n_feats": 8}, "hidden": [16, 16]}


@pytest.fixture
def model():
    torch.manual_seed(0)
    return make_model(CONFIG).eval()


def _raw(path, tensors, config=CONFIG, **extra):
    metadata = {"format": "ddir-zoom", "format_version": "1", "config": json.dumps(config),
                "info": "{}", **extra}
    save_file(tensors, str(path), metadata=metadata)


def test_round_trip(tmp_path, model):
    path = save_checkpoint(model, tmp_path / "m.safetensors", {"iterations": 12})
    loaded, info = load_checkpoint(path)
    assert info == {"iterations": 12}
    assert loaded.config == CONFIG
    lr = torch.rand(1, 3, 8, 8)
    coords = torch.rand(1, 20, 2) * 8
    cells = torch.full((1, 20, 2), 0.5)
    with torch.no_grad():
        assert torch.equal(model(lr, coords, cells)["rgb"], loaded(lr, coords, cells)["rgb"])
    assert not list(tmp_path.glob("*.part"))
    config, _ = read_header(path)
    assert config == CONFIG


def test_an_interrupted_save_keeps_the_previous_file(tmp_path, model, request):
    # save_checkpoint writes through atomic_output: a full disk (or a crash) while a training
    # run saves its model leaves the previous file whole and no temporary beside it.
    from ddir_zoom.imaging.io import ImageSaveError

    path = save_checkpoint(model, tmp_path / "m.safetensors", {"iterations": 1})
    before = path.read_bytes()
    full_disk = request.getfixturevalue("full_disk")
    with pytest.raises(ImageSaveError, match=r"m\.safetensors.*No space left"):
        save_checkpoint(model, path, {"iterations": 2})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]
    full_disk.undo()
    assert load_checkpoint(path)[1] == {"iterations": 1}


def test_missing_and_garbage_files(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        load_checkpoint(tmp_path / "none.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00\x01garbage" * 10)
    with pytest.raises(CheckpointError, match="not a safetensors"):
        load_checkpoint(tmp_path / "junk.safetensors")


def test_truncated_file(tmp_path, model):
    path = save_checkpoint(model, tmp_path / "m.safetensors")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(path)


def test_foreign_safetensors_file(tmp_path):
    save_file({"w": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(CheckpointError, match="not a ddir-zoom model"):
        load_checkpoint(tmp_path / "other.safetensors")


def test_newer_format_version(tmp_path, model):
    _raw(tmp_path / "v9.safetensors", model.state_dict(), format_version="9")
    with pytest.raises(CheckpointError, match="version 9"):
        load_checkpoint(tmp_path / "v9.safetensors")


def test_wrong_kind_of_model(tmp_path, model):
    path = save_checkpoint(model, tmp_path / "ddir.safetensors")
    with pytest.raises(CheckpointError, match="not 'liif'"):
        load_checkpoint(path, expect_model="liif")


def test_bad_config(tmp_path, model):
    _raw(tmp_path / "bad.safetensors", model.state_dict(), config={"model": "gan"})
    with pytest.raises(CheckpointError, match="architecture config"):
        load_checkpoint(tmp_path / "bad.safetensors")


def test_weights_of_another_architecture(tmp_path, model):
    liif = make_model({**CONFIG, "model": "liif"})
    _raw(tmp_path / "mixed.safetensors", liif.state_dict())  # declares ddir, holds liif
    with pytest.raises(CheckpointError, match="missing"):
        load_checkpoint(tmp_path / "mixed.safetensors")


def test_mismatched_shapes(tmp_path):
    wider = make_model({**CONFIG, "hidden": [32, 32]})
    _raw(tmp_path / "shape.safetensors", wider.state_dict())  # declares [16, 16]
    with pytest.raises(CheckpointError, match="shape"):
        load_checkpoint(tmp_path / "shape.safetensors")


def test_non_finite_weights(tmp_path, model):
    state = {k: v.clone() for k, v in model.state_dict().items()}
    next(iter(state.values()))[...] = float("nan")
    _raw(tmp_path / "nan.safetensors", state)
    with pytest.raises(CheckpointError, match="NaN"):
        load_checkpoint(tmp_path / "nan.safetensors")


def test_shipping_a_run_adds_the_tone_anchor_and_keeps_the_record(tmp_path, model):
    from training import ship

    source = tmp_path / "best.safetensors"
    save_checkpoint(model, source, {"iterations": 800, "command": "python -m training.train"})
    target = tmp_path / "shipped.safetensors"
    assert ship.main([str(source), str(target), "--tone-anchor", "--train-scales", "1.5,8",
                      "--tone-anchor-sigma", "1.5", "--tone-anchor-checkerboard"]) == 0
    shipped, info = load_checkpoint(target)
    assert shipped.tone_anchor and info["tone_anchor"] is True
    assert shipped.tone_anchor_sigma == 1.5 and shipped.tone_anchor_checkerboard
    assert info["iterations"] == 800 and info["train_scales"] == [1.5, 8.0]
    for key, value in model.state_dict().items():
        assert torch.equal(shipped.state_dict()[key], value), key
    assert not load_checkpoint(source)[0].tone_anchor
    assert not load_checkpoint(source)[0].tone_anchor_checkerboard
    assert ship.main([str(source), str(target)]) == 1  # no --force: the file stays
    assert load_checkpoint(target)[0].tone_anchor
    # and out again, the weights and the record kept: what the anchor costs is measured so
    bare = tmp_path / "bare.safetensors"
    assert ship.main([str(target), str(bare), "--no-tone-anchor"]) == 0
    unanchored, info = load_checkpoint(bare)
    assert not unanchored.tone_anchor and not unanchored.tone_anchor_checkerboard
    assert not set(ship.ANCHOR_KEYS) & set(info) and info["train_scales"] == [1.5, 8.0]
    for key, value in model.state_dict().items():
        assert torch.equal(unanchored.state_dict()[key], value), key
    assert ship.main([str(target), str(tmp_path / "x.safetensors"), "--no-tone-anchor",
                      "--tone-anchor"]) == 1


def test_a_blend_lies_on_the_line_between_two_models_and_records_both(tmp_path, model):
    from training import blend, report

    torch.manual_seed(1)
    other = make_model(CONFIG).eval()
    anchor = {"tone_anchor": True, "tone_anchor_sigma": 1.25}
    a = save_checkpoint(model, tmp_path / "a.safetensors",
                        {"iterations": 800, "command": "train a", **anchor})
    b = save_checkpoint(other, tmp_path / "b.safetensors",
                        {"iterations": 50, "command": "train b", **anchor})
    state_a, state_b = model.state_dict(), other.state_dict()
    for weight, expected in ((0.0, state_a), (1.0, state_b)):
        target = tmp_path / f"w{weight}.safetensors"
        assert blend.main([str(a), str(b), str(target), "--weight", str(weight)]) == 0
        blended = load_checkpoint(target)[0].state_dict()
        for key, value in expected.items():
            assert torch.equal(blended[key], value), key
    target = tmp_path / "half.safetensors"
    assert blend.main([str(a), str(b), str(target), "--weight", "0.25"]) == 0
    blended, info = load_checkpoint(target)
    some_differ = False
    for key, value in blended.state_dict().items():
        torch.testing.assert_close(value, 0.75 * state_a[key] + 0.25 * state_b[key])
        some_differ |= not torch.equal(state_a[key], state_b[key])
    assert some_differ
    # it renders as both ends did (the anchor), and says what it is made of
    assert blended.tone_anchor and blended.tone_anchor_sigma == 1.25
    assert info["blend"]["weight"] == 0.25 and "iterations" not in info
    assert info["blend"]["a"] == {"file": "a.safetensors", "iterations": 800,
                                  "command": "train a"}
    assert info["blend"]["b"]["command"] == "train b"
    card = report.model_card(target, "DDIR", None, None)  # its model card shows both runs
    assert "0.75 x A + 0.25 x B" in card and "train a" in card and "train b" in card
    # with A's run's log and B's, each marks the rows logged after the model it gave
    log_a, log_b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    for path, steps in ((log_a, (400, 800, 1200)), (log_b, (25, 50, 75))):
        path.write_text("".join(json.dumps({"step": s, "lr": 1e-4, "loss": 0.1, "improved": True,
                                            "val_psnr": {"set5": 30.0}, "elapsed_s": 60.0}) + "\n"
                                for s in steps))
    card = report.model_card(target, "DDIR", [log_a, log_b], None)
    later = [line.split(" | ")[0] for line in card.splitlines() if "(after" in line]
    assert later == ["| 1200", "| 75"]
    assert "| 1200 |" in card and card.count("(after A)") == 1 and card.count("(after B)") == 1
    assert blend.main([str(a), str(b), str(target), "--weight", "0.5"]) == 1  # no --force


def test_a_blend_of_unlike_models_is_refused(tmp_path, model):
    from training import blend

    a = save_checkpoint(model, tmp_path / "a.safetensors")
    wider = save_checkpoint(make_model({**CONFIG, "hidden": [32, 32]}), tmp_path / "w.safetensors")
    anchored = save_checkpoint(model, tmp_path / "anchored.safetensors", {"tone_anchor": True})
    out = tmp_path / "out.safetensors"
    with pytest.raises(ValueError, match="architecture"):
        blend.blend(a, wider, out, 0.5)
    with pytest.raises(ValueError, match="tone_anchor"):
        blend.blend(a, anchored, out, 0.5)
    for weight in ("-0.1", "1.5", "nan"):
        assert blend.main([str(a), str(a), str(out), "--weight", weight]) == 1
    assert not out.exists()


@pytest.mark.parametrize("sigma", ["wide", -1, 0.1, 100, True, float("nan"), [2.0]])
def test_a_bad_tone_anchor_sigma_is_refused(tmp_path, model, sigma):
    path = save_checkpoint(model, tmp_path / "m.safetensors",
                           {"tone_anchor": True, "tone_anchor_sigma": sigma})
    with pytest.raises(CheckpointError, match="tone_anchor_sigma"):
        load_checkpoint(path)


def test_no_tone_anchor_sigma_means_the_default(tmp_path, model):
    path = save_checkpoint(model, tmp_path / "m.safetensors", {"tone_anchor": True})
    assert load_checkpoint(path)[0].tone_anchor_sigma is None


@pytest.mark.parametrize("value", [1, "yes", None, [True]])
def test_a_bad_tone_anchor_checkerboard_is_refused(tmp_path, model, value):
    path = save_checkpoint(model, tmp_path / "m.safetensors",
                           {"tone_anchor": True, "tone_anchor_checkerboard": value})
    with pytest.raises(CheckpointError, match="tone_anchor_checkerboard"):
        load_checkpoint(path)
