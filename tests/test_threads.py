"""The CPU thread policy (ddir_zoom.threads)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from ddir_zoom import threads


def test_passive_waiting_is_set_before_torch_loads():
    code = ("import os, ddir_zoom.cli, torch; "
            "print(os.environ.get('OMP_WAIT_POLICY'), os.environ.get('GOMP_SPINCOUNT'), "
            "'torch' in dir())")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["PASSIVE", threads.SPIN_COUNT, "True"]


def test_a_users_wait_policy_is_kept():
    env = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"}
    env["OMP_WAIT_POLICY"] = "ACTIVE"
    out = subprocess.run([sys.executable, "-c", "import os, ddir_zoom; "
                          "print(os.environ['OMP_WAIT_POLICY'], "
                          "os.environ.get('GOMP_SPINCOUNT'))"], env=env,
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == ["ACTIVE", "None"]  # the user's policy, with no spin count added


@pytest.mark.parametrize("load, expected", [(0.0, 4), (0.9, 4), (1.2, 3), (3.7, 1), (9.0, 1)])
def test_free_cores_leave_the_busy_ones(monkeypatch, load, expected):
    monkeypatch.setattr(threads, "usable_cores", lambda: 4)
    assert threads.free_cores(load) == expected


def test_configure_sets_torch_threads():
    import torch

    before = torch.get_num_threads()
    try:
        assert threads.configure(1) == 1 and torch.get_num_threads() == 1
        assert threads.configure(0) == threads.free_cores()
    finally:
        torch.set_num_threads(before)


def test_release_trims_glibcs_heap_unless_switched_off(monkeypatch):
    """On glibc, release() trims the heap (and never fails); DDIR_ZOOM_MALLOC_TRIM=0 switches
    it off; elsewhere it does nothing."""
    from ddir_zoom import memory

    glibc = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert memory.trimming() == glibc
    memory.release()
    monkeypatch.setenv("DDIR_ZOOM_MALLOC_TRIM", "0")
    assert not memory.trimming()
    memory.release()
