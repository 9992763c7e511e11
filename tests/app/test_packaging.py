"""Packaging: every folder that ships is configured, under the one `waflens` namespace, so an install
neither warns, nor drops files, nor puts a generic top-level package (`app`, `data`) in site-packages.

setuptools treats any folder under a package as an importable (namespace) package; one missing from
``packages`` costs a long "Package 'waflens.app.pages' is absent from the packages configuration" warning
at every install, and its files ship only by accident. Two distributions come from this repository:
waflens (pyproject.toml) and waflens-runtime (runtime/pyproject.toml). The configuration is checked
against the tree here; the built wheels are checked by tests/runtime/test_wheels.py.
"""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROJECTS = {"waflens": REPO / "pyproject.toml", "waflens-runtime": REPO / "runtime" / "pyproject.toml"}


def _configuration(pyproject: Path) -> tuple[list[str], dict[str, str], dict[str, list[str]]]:
    tool = tomllib.loads(pyproject.read_text())["tool"]["setuptools"]
    return list(tool["packages"]), dict(tool["package-dir"]), dict(tool.get("package-data", {}))


def _shipped_folders(pyproject: Path):
    """(package name, folder) of every non-empty folder under each mapped package."""
    _, package_dir, _ = _configuration(pyproject)
    for package, relative in package_dir.items():
        top = (pyproject.parent / relative).resolve()
        for folder in [top, *sorted(p for p in top.rglob("*") if p.is_dir())]:
            if {"__pycache__", "build"} & set(folder.relative_to(top).parts) or folder.name.endswith(".egg-info") \
                    or any(part.endswith(".egg-info") for part in folder.relative_to(top).parts) \
                    or not any(f.is_file() for f in folder.iterdir()):
                continue
            yield ".".join([package, *folder.relative_to(top).parts]), folder


@pytest.mark.parametrize("project", PROJECTS)
def test_every_folder_is_a_configured_package_under_waflens(project):
    packages, package_dir, _ = _configuration(PROJECTS[project])
    missing = [name for name, _ in _shipped_folders(PROJECTS[project]) if name not in packages]
    assert not missing, f"absent from [tool.setuptools] packages (setuptools warns and may drop them): {missing}"
    assert {p.split(".")[0] for p in packages} == {"waflens"}      # one top-level name, nothing generic
    assert all(p.startswith(tuple(package_dir)) for p in packages)  # each ships from a mapped folder


def test_the_user_s_folders_are_the_packages():
    _, main_dirs, _ = _configuration(PROJECTS["waflens"])
    _, runtime_dirs, _ = _configuration(PROJECTS["waflens-runtime"])
    assert {package: (REPO / folder).resolve() for package, folder in main_dirs.items()} == {
        f"waflens.{name}": REPO / name for name in ("app", "data", "clustering", "labeling", "scoring", "pipeline")
        if (REPO / name).is_dir()}
    assert {p: (REPO / "runtime" / f).resolve() for p, f in runtime_dirs.items()} == {"waflens.runtime": REPO / "runtime"}


@pytest.mark.parametrize("project", PROJECTS)
def test_every_data_file_is_package_data(project):
    _, _, package_data = _configuration(PROJECTS[project])
    dropped = []
    for name, folder in _shipped_folders(PROJECTS[project]):
        for file in folder.iterdir():
            if not file.is_file() or file.suffix in (".py", ".pyc") or file.name in ("pyproject.toml", "README.md") \
                    and folder == PROJECTS[project].parent:
                continue
            parts = name.split(".")
            matched = any(fnmatch.fnmatch("/".join(parts[depth:] + [file.name]), pattern)
                          for depth in range(1, len(parts) + 1)
                          for pattern in package_data.get(".".join(parts[:depth]), []) + package_data.get("*", []))
            if not matched:
                dropped.append(str(file.relative_to(REPO)))
    assert not dropped, f"not in [tool.setuptools.package-data], so not installed: {dropped}"
