"""pyproject.toml ships what exists: package data that matches files, py.typed, the LICENSE."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_every_package_data_pattern_matches_a_file() -> None:
    package_data = PROJECT["tool"]["setuptools"]["package-data"]
    for package, patterns in package_data.items():
        for pattern in patterns:
            assert list((ROOT / package).glob(pattern)), f"{package}/{pattern} matches nothing"


def test_the_packages_are_typed_for_plugin_authors() -> None:
    package_data = PROJECT["tool"]["setuptools"]["package-data"]
    for package in ("consumer", "actions", "schemas"):
        assert (ROOT / package / "py.typed").is_file()
        assert "py.typed" in package_data[package]


def test_the_license_is_an_spdx_expression_with_its_text() -> None:
    assert PROJECT["project"]["license"] == "Apache-2.0"
    assert PROJECT["project"]["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
    # SPDX license expressions need setuptools >= 77 (PEP 639).
    assert "setuptools>=77" in PROJECT["build-system"]["requires"]
