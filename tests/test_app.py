"""The installed program end to end: `ddir-zoom --self-test` opens the bundled sample, refines a
frame with the best model available and exits 0 (what the desktop bundle's smoke check runs)."""

import os
import subprocess
import sys


def test_self_test_opens_and_refines_the_sample(tmp_path):
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "ddir_zoom", "--self-test"], env=env,
                            capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "self-test passed: opened coffee.png (600 x 400)" in result.stdout


def test_self_test_fails_on_a_bad_photo(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "ddir_zoom", "--self-test", str(bad)],
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "self-test failed" in result.stdout and "bad.png" in result.stdout
