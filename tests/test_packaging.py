"""Packaging facts a release depends on: one version, declared once (Cargo.toml), and a `mlmkit`
script that runs the command line."""

from __future__ import annotations

import importlib
import pathlib
import tomllib
from importlib import metadata

import pytest

import mlmkit

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_version_is_single_sourced_from_cargo_toml():
    cargo = tomllib.loads((ROOT / "Cargo.toml").read_text())["package"]["version"]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert mlmkit.__version__ == metadata.version("mlmkit") == cargo


def test_the_mlmkit_script_runs_the_command_line(capsys):
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, name = scripts["mlmkit"].partition(":")
    main = getattr(importlib.import_module(module), name)
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "--help"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("usage: mlmkit bench")


def test_one_extension_serves_every_supported_cpython():
    """The extension is built for the stable ABI of the oldest supported CPython, so one wheel
    installs on every CPython the project supports."""
    cargo = tomllib.loads((ROOT / "Cargo.toml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    oldest = project["requires-python"].removeprefix(">=")
    abi = "abi3-py" + oldest.replace(".", "")
    assert abi in cargo["dependencies"]["pyo3"]["features"]
    name = pathlib.Path(mlmkit._core.__file__).name
    assert name.endswith((".abi3.so", ".pyd")), name
