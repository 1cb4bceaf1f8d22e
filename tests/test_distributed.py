"""Training beyond one process: torchrun with gloo on the CPU, resumes with another number of
processes, a signal to one rank, and DataLoader workers that keep runs reproducible."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from training import train

TINY = json.dumps({"model": "liif", "encoder": {"n_resblocks": 1, "n_feats": 8}, "hidden": [16]})


@pytest.fixture
def photos(tmp_path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        y, x = np.mgrid[0:120, 0:140] / 11.0
        rgb = np.stack([np.sin(x + i), np.cos(y * 1.3), np.sin(x * y / 9)], -1) * 0.35 + 0.5
        rgb += rng.normal(0, 0.03, rgb.shape)
        Image.fromarray((np.clip(rgb, 0, 1) * 255).astype(np.uint8)).save(folder / f"{i}.png")
    return folder


def _args(photos: Path, out: Path, iterations: int, extra=()) -> list[str]:
    return ["--model", "liif", "--config", TINY, "--photos", str(photos), "--iterations",
            str(iterations), "--batch", "4", "--patch", "16", "--queries", "64", "--val-every",
            "3", "--threads", "1", "--out", str(out), *extra]


def _torchrun(n: int, args: list[str], **kwargs) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node",
                             str(n), "--master_port", str(29500 + os.getpid() % 1000), "-m",
                             "training.train", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env, **kwargs)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def test_two_processes_train_one_model_and_resume_with_one(photos, tmp_path):
    out = tmp_path / "run"
    process = _torchrun(2, _args(photos, out, 6))
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output
    digests = re.findall(r"rank (\d): weights sha256 ([0-9a-f]{16})", output)
    assert sorted(r for r, _ in digests) == ["0", "1"]
    assert digests[0][1] == digests[1][1], output  # DDP kept the ranks identical
    assert sorted(p.name for p in out.iterdir()) == [
        "best.safetensors", "last.pt", "last.safetensors", "log.jsonl"]
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [3, 6] and records[0]["processes"] == 2
    assert "global batch 4 = 2 process(es) x 2" in output
    # Resume in a single process, past the saved step.
    assert train.main(["--resume", str(out / "last.pt"), "--iterations", "9"]) == 0
    state = torch.load(out / "last.pt", weights_only=True)
    assert state["step"] == 9
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [3, 6, 9] and records[-1]["processes"] == 1


def test_a_signal_to_one_rank_stops_every_rank_resumably(photos, tmp_path):
    out = tmp_path / "run"
    process = _torchrun(2, _args(photos, out, 100000, ["--val-every", "2"]))
    deadline = time.monotonic() + 240
    while not (out / "log.jsonl").exists() or not (out / "log.jsonl").read_text():
        assert time.monotonic() < deadline and process.poll() is None, "training never started"
        time.sleep(0.2)
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
    assert len(children) == 2
    ranks = {}
    for pid in children:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        rank = next(e for e in env if e.startswith(b"RANK=")).split(b"=")[1]
        ranks[int(rank)] = int(pid)
    os.kill(ranks[1], signal.SIGTERM)  # only rank 1 is told
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 0, output
    assert "interrupted; continue with" in output
    digests = set(re.findall(r"weights sha256 ([0-9a-f]{16})", output))
    assert len(digests) == 1
    step = torch.load(out / "last.pt", weights_only=True)["step"]
    assert 2 <= step < 100000
    process = _torchrun(2, ["--resume", str(out / "last.pt"), "--iterations", str(step + 2)])
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output
    assert torch.load(out / "last.pt", weights_only=True)["step"] == step + 2


@pytest.mark.parametrize("workers", [0, 1, 2])
def test_same_seed_and_workers_same_weights(photos, tmp_path, workers):
    runs = []
    for name in ("a", "b"):
        out = tmp_path / name
        assert train.main(_args(photos, out, 4, ["--workers", str(workers)])) == 0
        runs.append(_weights(out / "last.pt"))
    for key in runs[0]:
        assert torch.equal(runs[0][key], runs[1][key]), key


def test_workers_draw_other_batches_than_the_training_process(photos, tmp_path):
    """One worker's stream is seeded apart from the in-process stream: a reproducible run,
    but a different one (the count of workers is part of what reproduces a run)."""
    a, b = tmp_path / "a", tmp_path / "b"
    assert train.main(_args(photos, a, 4, ["--workers", "0"])) == 0
    assert train.main(_args(photos, b, 4, ["--workers", "1"])) == 0
    wa, wb = _weights(a / "last.pt"), _weights(b / "last.pt")
    assert any(not torch.equal(wa[k], wb[k]) for k in wa)


def test_pregenerated_pairs_train(tmp_path):
    from training import pregenerate

    photos = tmp_path / "big"
    photos.mkdir()
    rng = np.random.default_rng(1)
    for i in range(3):  # large enough for a 48-pixel patch at x4
        Image.fromarray(rng.integers(0, 255, (240, 260, 3), np.uint8)).save(photos / f"{i}.png")
    degraded = tmp_path / "degraded"
    assert pregenerate.main(["--photos", str(photos), "--out", str(degraded), "--draws",
                             "2"]) == 0
    index = json.loads((degraded / "index.json").read_text())
    assert len(index) == 6 and all(1.5 <= e["scale"] <= 4 for e in index)
    out = tmp_path / "run"
    args = ["--model", "liif", "--config", TINY, "--pregenerated", str(degraded),
            "--iterations", "3", "--batch", "2", "--patch", "16", "--queries", "64",
            "--val-every", "3", "--out", str(out)]
    assert train.main(args) == 0
    assert (out / "best.safetensors").exists()
