"""TensorFlow's start-up lines (absl's preamble, oneDNN's notice) never reach a terminal or a notebook
(models/quiet_tensorflow.py, issue 19.8), while its errors and everything else on stderr still do."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tracklens.models import quiet_tensorflow

#: What TensorFlow 2.21 wrote at `import tensorflow` in a plain session (TF_CPP_MIN_LOG_LEVEL unset).
START_UP = (
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
    "I0000 00:00:1796630050.694793   26483 port.cc:153] oneDNN custom operations are on. You may see "
    "slightly different numerical results due to floating-point round-off errors from different computation "
    "orders. To turn them off, set the environment variable `TF_ENABLE_ONEDNN_OPTS=0`.\n"
    "I0000 00:00:1796630050.764926   26483 cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use "
    "available CPU instructions in performance-critical operations.\n"
    "To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild TensorFlow with the "
    "appropriate compiler flags.\n"
)
NOISE = ("oneDNN", "absl", "I0000", "cpu_feature_guard", "To enable the following instructions")
PACKAGE_PARENT = str(Path(quiet_tensorflow.__file__).resolve().parents[2])


def test_start_up_lines_go_and_everything_else_stays():
    error = "E0000 00:00:1796630051.000001   26483 some_op.cc:12] a real error\n"
    own = "UserWarning: something of the caller's own\n"
    text = START_UP + own + error + "To enable the following instructions: a line of the caller's\n"
    assert quiet_tensorflow.drop_start_up_lines(text, level=2) == own + error + \
        "To enable the following instructions: a line of the caller's\n"
    assert quiet_tensorflow.drop_start_up_lines(text, level=3) == own  # the error and its continuation go
    assert quiet_tensorflow.drop_start_up_lines(text, level=0) == text  # TF_CPP_MIN_LOG_LEVEL=0: all of it


def test_descriptor_2_is_filtered_and_given_back(capfd, monkeypatch):
    """What C++ writes to file descriptor 2 inside the block comes back less the start-up lines;
    after the block, descriptor 2 is the one it was."""
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    with quiet_tensorflow.start_up_lines_dropped():
        os.write(2, (START_UP + "E0000 00:00:1.5 7 op.cc:1] kept error\nplain line\n").encode())
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "E0000 00:00:1.5 7 op.cc:1] kept error\nplain line\nafter\n"


def _plain_session(code: str) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter as a user would run it: no TensorFlow variables set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [PACKAGE_PARENT, env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)


def test_importing_keras_through_tracklens_prints_nothing():
    """`import keras` in any tracklens module (models.builders imports it at its top) in a plain
    session: no oneDNN or absl line, TensorFlow loaded, and oneDNN's kernels still on."""
    quiet = _plain_session("import tracklens.models.builders, os, sys; "
                           "print('tensorflow' in sys.modules, os.environ.get('TF_ENABLE_ONEDNN_OPTS'))")
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout.split() == ["True", "None"]
    assert not [word for word in NOISE if word in quiet.stderr], quiet.stderr


def test_a_user_who_asks_for_tensorflow_logs_gets_them():
    """TF_CPP_MIN_LOG_LEVEL=0 shows every start-up line, as TensorFlow documents it (and shows that
    this TensorFlow does print what the test above finds absent)."""
    shown = _plain_session("import os; os.environ['TF_CPP_MIN_LOG_LEVEL'] = '0'; import tracklens.models.builders")
    assert shown.returncode == 0, shown.stderr
    assert "oneDNN custom operations are on" in shown.stderr


@pytest.mark.slow
def test_catalogue_build_in_a_plain_session_prints_no_tensorflow_line(tmp_path):
    """The report's case: `from tracklens import catalogue; catalogue.build(...)` in plain Python."""
    import numpy as np
    import soundfile as sf

    sr = 22_050
    t = np.arange(sr * 5) / sr
    (tmp_path / "src").mkdir()
    for i, f in enumerate((220, 330)):
        sf.write(tmp_path / "src" / f"tone{i}.wav", (0.3 * np.sin(2 * np.pi * f * t)).astype("float32"), sr)
    run = _plain_session(f"from tracklens import catalogue; "
                         f"c = catalogue.build({str(tmp_path / 'src')!r}, {str(tmp_path / 'cat')!r}, "
                         f"cache_dir={str(tmp_path / 'cache')!r}); "
                         "print(c.card['counts']['tracks'])")
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "2"
    assert not [word for word in NOISE if word in run.stderr], run.stderr
