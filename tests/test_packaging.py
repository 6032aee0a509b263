"""Packaging facts a release depends on: one version, declared once (Cargo.toml)."""

from __future__ import annotations

import pathlib
import tomllib
from importlib import metadata

import mlmkit

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_version_is_single_sourced_from_cargo_toml():
    cargo = tomllib.loads((ROOT / "Cargo.toml").read_text())["package"]["version"]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert mlmkit.__version__ == metadata.version("mlmkit") == cargo
