"""The package: one `tracklens` in site-packages, a wheel that works from any folder.

The wheel is built from a copy of the working tree (so the build never litters the repository),
installed with `--no-deps` into a fresh virtualenv that borrows the dependencies of the project's
own .venv through a .pth file (a full dependency install would take minutes), and run from a
folder that holds its own `config.py` and `models/`, as a notebook folder might.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tracklens import config

pytestmark = pytest.mark.slow  # ~40 s: a wheel build and two TensorFlow start-ups


def _tracked_files(root: Path) -> list[str]:
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=root, capture_output=True,
                         text=True, check=True).stdout
    return [line for line in out.splitlines() if line and (root / line).is_file()]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    if shutil.which("git") is None or not (config.PACKAGE_DIR / ".git").exists():
        pytest.skip("needs the git checkout to know which files are the project's")
    src = tmp_path_factory.mktemp("src")
    for name in _tracked_files(config.PACKAGE_DIR):
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(config.PACKAGE_DIR / name, src / name)
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(dist),
                    str(src)], check=True, capture_output=True, timeout=300)
    (found,) = dist.glob("tracklens-*.whl")
    return found


def test_wheel_holds_one_package_with_its_models_and_assets(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    assert top == {"tracklens", wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".dist-info"}
    for needed in ("tracklens/__init__.py", "tracklens/prepare.py", "tracklens/models/blend.py",
                   "tracklens/models/default/model.keras", "tracklens/models/default/card.json",
                   "tracklens/models/default-table/model.keras", "tracklens/models/pretrained/MSD_musicnn.weights.h5",
                   "tracklens/models/pretrained/mn04_as.weights.h5", "tracklens/models/descriptors/estimator.json",
                   # basic-pitch, read by the key and the tempo of every analysis, and its Apache-2.0 licence
                   "tracklens/models/pretrained/basic_pitch_nmp.onnx", "tracklens/models/pretrained/LICENSE-basic-pitch.md",
                   "tracklens/dashboard/assets/style.css", "tracklens/dashboard/pages/check.py"):
        assert needed in names, needed
    assert not [n for n in names if n.startswith(("tracklens/tests/", "tracklens/bench/", "tracklens/data/", "tracklens/recipes/"))]
    # every module of every package in the tree: a new sub-package (acquire/ was one) that pyproject's
    # `packages` does not list is left out of the wheel silently, and `import tracklens.<it>` fails
    tracked = _tracked_files(config.PACKAGE_DIR)
    packages = {Path(n).parent for n in tracked if Path(n).name == "__init__.py"
                and Path(n).parts[0] not in ("tests", "bench", "recipes", "notebooks", "data")}
    missing = [n for n in tracked if n.endswith(".py") and Path(n).parent in packages and f"tracklens/{n}" not in names]
    assert not missing, f"not in the wheel (list the package in pyproject.toml's packages): {missing}"
    assert "tracklens/models/heads.py" not in names  # the shipped models' recipes stay in recipes/
    entry = [n for n in names if n.endswith("entry_points.txt")]
    assert "tracklens = tracklens.cli:main" in zipfile.ZipFile(wheel).read(entry[0]).decode()


@pytest.fixture(scope="module")
def fresh_venv(wheel, tmp_path_factory) -> Path:
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = Path(subprocess.run([venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "borrowed_deps.pth").write_text(sysconfig.get_path("purelib") + "\n")  # numpy, tensorflow, ...
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
                    "--no-deps", "--no-index", str(wheel)], check=True, capture_output=True, timeout=300)
    return venv


def _clip() -> Path:
    real = config.SHARED_DATA_DIR / "gtzan" / "audio" / "metal" / "metal.00002.opus"
    return real


def _probabilities(csv_text: str) -> np.ndarray:
    lines = [line.split(",") for line in csv_text.strip().splitlines()]
    assert lines[0][:2] == ["path", "top_genre"]
    return np.array([float(v) for v in lines[1][2:2 + len(config.GTZAN_GENRES)]])


def test_wheel_predicts_like_the_repo_from_a_folder_with_its_own_config_and_models(fresh_venv, tmp_path, run_cli):
    clip = _clip()
    if not clip.is_file():
        pytest.skip(f"real clip not found at {clip}")
    notebook_dir = tmp_path / "my notebooks"
    (notebook_dir / "models").mkdir(parents=True)
    (notebook_dir / "config.py").write_text("raise ImportError('the notebook folder config.py was imported')\n")
    (notebook_dir / "models" / "__init__.py").write_text("raise ImportError('the notebook folder models/ was imported')\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRACKLENS_", "PYTHON"))}
    env.update(HOME=str(tmp_path / "home"), XDG_DATA_HOME=str(tmp_path / "home" / "share"), TF_CPP_MIN_LOG_LEVEL="2",
               TF_ENABLE_ONEDNN_OPTS="0")

    check = ("import json, tracklens, tracklens.config as c; from tracklens import prepare, explore; "
             "from tracklens.models import blend; "
             "print(json.dumps({'pkg': tracklens.__file__, 'home': str(c.HOME), 'models': str(c.DEFAULT_MODEL_DIR)}))")
    proc = subprocess.run([fresh_venv / "bin" / "python", "-c", check], cwd=notebook_dir, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    where = json.loads(proc.stdout.strip().splitlines()[-1])
    assert str(fresh_venv) in where["pkg"] and "site-packages" in where["pkg"]
    assert where["home"] == str(tmp_path / "home" / "share" / "tracklens")  # never inside site-packages
    assert Path(where["models"], "model.keras").is_file()

    proc = subprocess.run([fresh_venv / "bin" / "tracklens", "predict", str(clip), "--format", "csv"], cwd=notebook_dir,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    installed = _probabilities(proc.stdout)

    code, out, err = run_cli("predict", clip, "--format", "csv")
    assert code in (0, None), err
    np.testing.assert_allclose(installed, _probabilities(out), atol=1e-6)
    assert not (notebook_dir / "data").exists() and not (notebook_dir / "reports").exists()


def test_site_packages_holds_tracklens_alone(fresh_venv):
    site = Path(subprocess.run([fresh_venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               capture_output=True, text=True, check=True).stdout.strip())
    ours = sorted(p.name for p in site.iterdir() if p.name != "borrowed_deps.pth" and p.name != "__pycache__")
    assert ours == ["tracklens", "tracklens-0.1.0.dist-info"]
