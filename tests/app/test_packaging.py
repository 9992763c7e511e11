"""Packaging: every folder that ships is configured, so an install neither warns nor drops files.

setuptools treats any folder under a package as an importable (namespace) package; one missing from
``packages`` costs a long "Package 'app.pages' is absent from the packages configuration" warning at
every install, and its files ship only by accident. The wheel is not built here (that needs the network
for build isolation): the configuration is checked against the tree instead.
"""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TOP_LEVEL = ("app", "data", "clustering", "labeling", "scoring")


def _configuration() -> tuple[list[str], dict[str, list[str]]]:
    tool = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    return list(tool["packages"]), dict(tool.get("package-data", {}))


def _shipped_folders():
    for top in TOP_LEVEL:
        for folder in [REPO / top, *sorted(p for p in (REPO / top).rglob("*") if p.is_dir())]:
            if folder.name == "__pycache__" or not any(f.is_file() for f in folder.iterdir()):
                continue
            yield ".".join(folder.relative_to(REPO).parts), folder


def test_every_folder_of_the_top_level_packages_is_a_configured_package():
    packages, _ = _configuration()
    missing = [name for name, _ in _shipped_folders() if name not in packages]
    assert not missing, f"absent from [tool.setuptools] packages (setuptools warns and may drop them): {missing}"
    assert {p.split(".")[0] for p in packages} == set(TOP_LEVEL)          # the top level stays as it is


def test_every_data_file_is_package_data():
    _, package_data = _configuration()
    dropped = []
    for name, folder in _shipped_folders():
        for file in folder.iterdir():
            if not file.is_file() or file.suffix in (".py", ".pyc"):
                continue
            parts = file.relative_to(REPO).parts        # a pattern of any enclosing package may match it
            matched = any(fnmatch.fnmatch("/".join(parts[depth:]), pattern)
                          for depth in range(1, len(parts))
                          for pattern in package_data.get(".".join(parts[:depth]), []) + package_data.get("*", []))
            if not matched:
                dropped.append(str(file.relative_to(REPO)))
    assert not dropped, f"not in [tool.setuptools.package-data], so not installed: {dropped}"
