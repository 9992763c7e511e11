"""The two distributions as users install them: the wheels pip builds from this repository, installed
into fresh venvs.

- Each wheel puts one top-level name in site-packages, `waflens`: the runtime wheel only
  waflens/runtime/..., the main wheel everything else and no waflens/runtime/ file.
- The runtime wheel installed alone (pip fetches numpy and numba, nothing else) passes tests/runtime,
  against the stored models of fixtures/ (issue [A2]: a worker venv loads what `waflens train` exported).
- The installed waflens runs its CLI and the workbench's jobs from a folder that holds a package named
  `app` (the jobs run with the database's folder as their working directory).

These build and install, so they need the full waflens and pip's access to the package index (or its
cache); they skip only in the runtime-only venv they create themselves.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROJECT_FILES = ("pyproject.toml", "README.md", "LICENSE", "NOTICE")

pytestmark = pytest.mark.skipif(importlib.util.find_spec("waflens.app") is None,
                                reason="builds and installs the wheels: needs the full waflens (this is a runtime-only venv)")


def _pip(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
                            capture_output=True, text=True, timeout=timeout, env=_clean_env())
    assert result.returncode == 0, f"pip {' '.join(args[:2])} failed:\n{result.stderr[-3000:]}"
    return result


def _clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without what would leak the test's own set-up into a child (its
    import path, pytest's options and worker ids)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV") and not k.startswith(("PYTEST_", "COV_"))}
    return {**env, **extra}


def _source_copy(into: Path) -> Path:
    """The files the two distributions are built from, copied: an in-tree build would leave build/ and
    .egg-info behind, and setuptools ships stale files out of an old build/lib."""
    mapped = set()
    for pyproject in (REPO / "pyproject.toml", REPO / "runtime" / "pyproject.toml"):
        folders = tomllib.loads(pyproject.read_text())["tool"]["setuptools"]["package-dir"].values()
        mapped |= {(pyproject.parent / folder).resolve().relative_to(REPO).parts[0] for folder in folders}

    def ignore(folder: str, names: list[str]) -> set[str]:
        if Path(folder).resolve() == REPO:
            return {n for n in names if n not in mapped and n not in PROJECT_FILES}
        return {n for n in names if n in ("__pycache__", "build", "dist") or n.endswith((".egg-info", ".pyc"))}

    return Path(shutil.copytree(REPO, into, ignore=ignore))


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("wheels")
    source = _source_copy(tmp / "source")
    started = time.monotonic()
    _pip("wheel", "--no-deps", "-w", str(tmp / "dist"), str(source), str(source / "runtime"))
    print(f"both wheels built in {time.monotonic() - started:.1f} s")
    built = {p.name.split("-")[0].replace("_", "-"): p for p in (tmp / "dist").glob("*.whl")}
    assert set(built) == {"waflens", "waflens-runtime"}, built
    return built


def _files(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def _metadata(wheel: Path, name: str) -> str:
    with zipfile.ZipFile(wheel) as archive:
        info = next(n for n in archive.namelist() if n.endswith(f".dist-info/{name}"))
        return archive.read(info).decode()


def _requirements(wheel: Path) -> set[str]:
    return {line.split(":", 1)[1].split(";")[0].strip().split(">")[0].split("=")[0].split("<")[0].strip()
            for line in _metadata(wheel, "METADATA").splitlines() if line.startswith("Requires-Dist:")
            and "extra ==" not in line}


@pytest.mark.parametrize("distribution", ["waflens", "waflens-runtime"])
def test_each_wheel_installs_one_top_level_name(wheels, distribution):
    files = _files(wheels[distribution])
    assert _metadata(wheels[distribution], "top_level.txt").split() == ["waflens"]
    outside = [f for f in files if not f.startswith("waflens/") and ".dist-info/" not in f]
    assert not outside, f"{distribution} installs files outside waflens/: {outside}"
    assert "waflens/__init__.py" not in files   # a namespace shared by the two distributions
    # the projects' own files stay out of the packages (the runtime folder is the package's folder)
    project_files = [f for f in files if f.count("/") == 2 and f.rsplit("/", 1)[1] in PROJECT_FILES]
    assert not project_files, f"{distribution} ships project files inside a package: {project_files}"


def test_the_runtime_wheel_holds_the_runtime_and_needs_only_numpy_and_numba(wheels):
    files = [f for f in _files(wheels["waflens-runtime"]) if ".dist-info/" not in f]
    assert all(f.startswith("waflens/runtime/") for f in files), files
    sources = {"waflens/runtime/" + p.relative_to(REPO / "runtime").as_posix() for p in (REPO / "runtime").rglob("*.py")
               if not {"build", "__pycache__"} & set(p.relative_to(REPO / "runtime").parts)}
    modules = {f for f in files if f.endswith(".py")}
    assert modules == sources, f"missing {sorted(sources - modules)}, unexpected {sorted(modules - sources)}"
    assert _requirements(wheels["waflens-runtime"]) == {"numpy", "numba"}


def test_the_main_wheel_holds_no_runtime_and_depends_on_it(wheels):
    files = _files(wheels["waflens"])
    assert not [f for f in files if f.startswith("waflens/runtime/")]
    assert {f.split("/")[1] for f in files if f.startswith("waflens/")} >= {"app", "data", "clustering", "labeling", "scoring"}
    assert "waflens-runtime" in _requirements(wheels["waflens"])
    assert "waflens = waflens.app.cli:main" in _metadata(wheels["waflens"], "entry_points.txt")


def _venv(path: Path) -> Path:
    """A fresh venv without pip (this process's pip installs into it: faster than bootstrapping one)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True, timeout=120)
    return path / "bin" / "python"


def _site_packages(python: Path) -> Path:
    return Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())


def _megabytes(folder: Path, exclude: tuple[str, ...] = ()) -> float:
    total = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink()
                and not p.relative_to(folder).parts[0].lower().startswith(exclude))
    return total / 1e6


TEST_TOOLS = ("pytest", "_pytest", "pluggy", "iniconfig", "packaging", "pygments", "py.py", "pytest_timeout")


@pytest.mark.slow
@pytest.mark.timeout(1800)   # numba compiles every kernel afresh there: about a minute of CPU
def test_the_runtime_wheel_alone_in_a_fresh_venv_passes_the_runtime_tests(wheels, tmp_path):
    python = _venv(tmp_path / "worker")
    started = time.monotonic()
    # --no-compile: the tests import a fraction of numpy and numba; byte-compiling all of them costs more
    _pip("--python", str(python), "install", "--no-compile", str(wheels["waflens-runtime"]), "pytest>=8",
         "pytest-timeout>=2.3")
    installed = {d["name"].lower() for d in json.loads(_pip("--python", str(python), "list", "--format", "json").stdout)}
    assert installed - {"pytest", "pytest-timeout", "pluggy", "iniconfig", "packaging", "pygments", "colorama",
                        "exceptiongroup", "tomli"} == {"waflens-runtime", "numpy", "numba", "llvmlite"}
    site = _site_packages(python)
    print(f"runtime venv installed in {time.monotonic() - started:.1f} s; site-packages without the test tools: "
          f"{_megabytes(site, TEST_TOOLS):.0f} MB")
    where = subprocess.run([str(python), "-I", "-c", "import importlib.util, waflens.runtime; "
                            "print(waflens.runtime.__file__, importlib.util.find_spec('waflens.app'))"],
                           capture_output=True, text=True, check=True).stdout.split()
    assert Path(where[0]).is_relative_to(site) and where[1] == "None"   # the wheel's files, and nothing more
    started = time.monotonic()
    # the stored-artifact parity and the import closure: what a worker's venv must get right (the hot-swap
    # tests run in the full venv only: they would compile every kernel here again for no new check of the install)
    run = subprocess.run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", "-o", "timeout=900",
                          "tests/runtime/test_stored_artifact.py", "tests/runtime/test_import_closure.py",
                          "tests/runtime/test_wheels.py"],
                         cwd=REPO, capture_output=True, text=True, timeout=900,
                         env=_clean_env(PYTHONHASHSEED="0", PYTHONDONTWRITEBYTECODE="1"))
    print(f"tests/runtime in the runtime venv: {time.monotonic() - started:.1f} s")
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    summary = run.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary and "error" not in summary, summary
    # everything ran there except this file, which needs the full waflens
    assert run.stdout.count("SKIPPED") == sum(1 for line in run.stdout.splitlines()
                                              if line.startswith("SKIPPED") and "test_wheels.py" in line), run.stdout[-3000:]


USER_APP = '''"""A user's Flask-style application package, which happens to sit beside the waflens database."""

APP_NAME = "shop"
'''


def test_installed_waflens_runs_its_cli_and_jobs_from_a_folder_holding_an_app_package(wheels, tmp_path):
    python = _venv(tmp_path / "venv")
    _pip("--python", str(python), "install", "--no-deps", "--no-compile", str(wheels["waflens"]),
         str(wheels["waflens-runtime"]))
    # waflens' dependencies from this interpreter's site-packages (a path entry, so their .pth files, such
    # as an editable waflens' import hook, do not run: only the wheels' waflens is importable)
    deps = [p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()]
    (_site_packages(python) / "_waflens_test_deps.pth").write_text("\n".join(deps) + "\n")
    folder = tmp_path / "site"
    (folder / "app").mkdir(parents=True)
    (folder / "app" / "__init__.py").write_text(USER_APP)
    env = _clean_env(WAFLENS_DB=str(folder / "waflens.duckdb"), WAFLENS_PSEUDONYM_KEY="wheel-test-key-0123456789abcdef")

    def run(*command: str) -> subprocess.CompletedProcess:
        return subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=300)

    # The layout before [A2], in the same venv: a top-level `app` package with a cli module in site-packages
    # (the old wheel's, whose job command was `python -m app.cli`). It runs from elsewhere, and fails here:
    # `-m` puts the working directory first on sys.path, so the folder's own `app` wins.
    old = _site_packages(python) / "app"
    old.mkdir()
    (old / "__init__.py").write_text("")
    (old / "cli.py").write_text("print('the old waflens CLI')\n")
    elsewhere = subprocess.run([str(python), "-m", "app.cli"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert elsewhere.stdout.strip() == "the old waflens CLI", elsewhere.stderr
    assert "No module named app.cli" in run(str(python), "-m", "app.cli").stderr
    # the installed waflens is not affected by either `app`
    for command in ([str(python), "-m", "waflens.app.cli", "--help"], [str(python.parent / "waflens"), "--help"]):
        result = run(*command)
        assert result.returncode == 0 and "Usage:" in result.stdout and "retrain" in result.stdout, result.stderr
    # the workbench's job runner (app/jobs.py), outside Streamlit's server: its command, environment and cwd
    job = run(str(python), "-c", f"""
import json, waflens.app.jobs as jobs
result = jobs.run_cli(["generate", "--out", "traffic.log", "--requests", "200", "--seed", "1"], "Generate")
print(json.dumps({{"code": result.code, "summary": result.summary, "log": result.log,
                   "jobs": jobs.__file__, "command": jobs.cli_command([])}}))
""")
    assert job.returncode == 0, job.stderr[-3000:]
    report = json.loads(job.stdout.strip().splitlines()[-1])
    assert report["code"] == 0, report["log"]
    assert Path(report["jobs"]).is_relative_to(_site_packages(python))             # the installed waflens
    assert report["command"][1:4] == ["-P", "-m", "waflens.app.cli"]            # -P: the cwd shadows nothing
    assert (folder / "traffic.log").stat().st_size > 0 and report["summary"]        # ran in the database's folder
