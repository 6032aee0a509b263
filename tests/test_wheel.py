"""The wheel: one abi3 wheel (CPython >= 3.11) that installs and collates on a machine without a
Rust toolchain. Builds the wheel with maturin (reusing the release build in target/), installs
it into a fresh virtualenv, and collates a batch there with PATH holding no cargo or rustc."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent

COLLATE = """
import pathlib, sys
import mlmkit
from mlmkit import _core
from transformers import AutoTokenizer
assert pathlib.Path(mlmkit.__file__).is_relative_to(sys.prefix), mlmkit.__file__
assert "abi3" in pathlib.Path(_core.__file__).name, _core.__file__
tok = AutoTokenizer.from_pretrained(sys.argv[1])
batch = mlmkit.DataCollatorForLanguageModeling(tok, seed=0, mlm_probability=1.0,
    mask_replace_prob=1.0, random_replace_prob=0.0)([[101, 7592, 2088, 102], [101, 102]])
assert batch["input_ids"].tolist() == [[101, 103, 103, 102], [101, 102, 0, 0]], batch
assert batch["labels"].tolist() == [[-100, 7592, 2088, -100], [-100] * 4], batch
print("collated with", _core.__file__)
"""


def _without_rust(path: str) -> str:
    keep = []
    for d in path.split(os.pathsep):
        if d and not any((pathlib.Path(d) / tool).exists() for tool in ("cargo", "rustc")):
            keep.append(d)
    return os.pathsep.join(keep)


def _maturin() -> list[str]:
    """The maturin of this environment (`python -m maturin` needs its script beside `python`,
    which a virtualenv over system site-packages lacks)."""
    script = pathlib.Path(sys.executable).with_name("maturin")
    if script.exists():
        return [str(script)]
    found = shutil.which("maturin")
    return [found] if found else [sys.executable, "-m", "maturin"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> pathlib.Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [*_maturin(), "build", "--release", "--out", str(out), "--quiet"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    (built,) = out.glob("mlmkit-*.whl")
    return built


def test_one_abi3_wheel_for_every_cpython(wheel):
    tags = wheel.name.removesuffix(".whl").split("-")[-3:]
    assert tags[:2] == ["cp311", "abi3"], wheel.name
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
    assert any(n.startswith("mlmkit/_core.abi3.") for n in names), names
    # the wheel ships the package, not the test oracles
    assert not any("reference" in n for n in names), names


def test_wheel_installs_and_collates_without_rust(wheel, tmp_path, bert_dir):
    venv = tmp_path / "venv"
    # system site-packages provide torch/transformers; the venv's own mlmkit comes first
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    python = venv / "bin" / "python"
    env = {
        **os.environ,
        "PATH": os.pathsep.join([str(venv / "bin"), _without_rust(os.environ["PATH"])]),
    }
    assert shutil.which("cargo", path=env["PATH"]) is None
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True,
        env=env,
    )
    done = subprocess.run(
        [str(python), "-c", COLLATE, str(bert_dir)],
        env={**env, "PYTHONPATH": ""},
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert str(venv) in done.stdout
