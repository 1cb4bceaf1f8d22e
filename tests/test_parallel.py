"""Pieces of CPU work side by side, one torch thread each (ddir_zoom.parallel)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from ddir_zoom import parallel
from ddir_zoom.models import make_model
from ddir_zoom.models.geometry import upscale_queries


@pytest.mark.parametrize("total, most, parts", [
    (16384, 4096, 2), (1000, 4096, 2), (1, 4096, 2), (4097, 4096, 1), (10, 3, 4), (0, 5, 2)])
def test_even_pieces_cover_the_range_in_short_enough_nearly_equal_parts(total, most, parts):
    pieces = parallel.even_pieces(total, most, parts)
    covered = [i for start, stop in pieces for i in range(start, stop)]
    assert covered == list(range(total))
    lengths = [stop - start for start, stop in pieces]
    assert all(0 < n <= most for n in lengths)
    assert len(pieces) >= min(parts, total)
    assert not lengths or max(lengths) - min(lengths) <= max(lengths) // 2 + 1


def test_pieces_run_once_each_on_one_thread_and_leave_the_thread_counts_as_they_were():
    """In a fresh process: every piece runs once, in inference mode, on a pool thread with one
    torch thread; the caller keeps its count, and a thread started afterwards starts with it
    (torch gives a new thread the count last set by any thread)."""
    code = """
import threading, torch
from ddir_zoom import parallel
torch.set_num_threads(2)
seen = {}
def work(i):
    seen[i] = (torch.get_num_threads(), torch.is_inference_mode_enabled(),
               threading.current_thread().name.startswith("ddir-piece"))
parallel.run_pieces(work, 5, torch.device("cpu"))
later = []
t = threading.Thread(target=lambda: later.append(torch.get_num_threads()))
t.start(); t.join()
print(sorted(seen) == list(range(5)), set(seen.values()), torch.get_num_threads(), later)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "True {(1, True, True)} 2 [2]"


def test_an_error_in_a_piece_reaches_the_caller():
    def work(index: int) -> None:
        if index == 2:
            raise ValueError("piece 2")

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with pytest.raises(ValueError, match="piece 2"):
            parallel.run_pieces(work, 4, torch.device("cpu"))
    finally:
        torch.set_num_threads(before)


def test_decoding_in_pieces_equals_decoding_in_chunks(monkeypatch):
    torch.manual_seed(0)
    model = make_model({"model": "ddir", "encoder": {"n_resblocks": 1, "n_feats": 8},
                        "hidden": [16, 16]}).eval()
    grids, appearance = model.prepare(torch.rand(1, 3, 30, 40))
    coords, cells = upscale_queries(2.7, (70, 90), (5, 3))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        pieces = model.query(grids, coords[None], cells[None].float(), (30, 40), appearance,
                             chunk=1000)
        monkeypatch.setenv("DDIR_ZOOM_PIECES", "0")
        assert parallel.workers(torch.device("cpu")) == 1
        chunks = model.query(grids, coords[None], cells[None].float(), (30, 40), appearance,
                             chunk=1000)
    finally:
        torch.set_num_threads(before)
    torch.testing.assert_close(pieces, chunks, rtol=0, atol=1e-6)


def test_one_thread_keeps_the_callers_cores_for_pieces():
    """Inside one_thread the caller's own operations run on one thread, pieces still spread
    over the cores it had, and a single piece runs on all of them; the count comes back."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        seen = []
        with parallel.one_thread():
            assert torch.get_num_threads() == 1
            assert parallel.workers(torch.device("cpu")) == 2
            parallel.run_pieces(lambda i: seen.append(torch.get_num_threads()), 1,
                                torch.device("cpu"))
            assert torch.get_num_threads() == 1
            parallel.run_pieces(lambda i: seen.append(torch.get_num_threads()), 2,
                                torch.device("cpu"))
        assert seen == [2, 1, 1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
