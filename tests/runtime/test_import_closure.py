"""What a WAF worker imports with the runtime: the standard library, numpy, numba (and llvmlite, numba's
compiler), and waflens.runtime. Nothing of the training stack (pandas, DuckDB, scikit-learn, Streamlit,
LangChain) and no other waflens package, even where they are installed (the full waflens venv).

The check runs in a fresh interpreter: every waflens.runtime module imported, then both kinds of stored
model loaded and scored, so that imports made on first use count too. What the interpreter imported
before (site, .pth hooks) is not the runtime's doing and is left out; so is what numpy and numba import
themselves where they are installed with their optional companions (numba imports scipy and yaml when
it finds them, and cffi at its first compile). That allowance could hide a direct `import scipy` of ours, so each runtime module's own
import statements are checked too; and in the runtime-only venv (tests/runtime/test_wheels.py) there
is nothing to hide.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from tests.runtime.stored import FIXTURES

THIRD_PARTY = {"numpy", "numba", "llvmlite"}

PROBE = """
import sys
before = set(sys.modules)
import importlib, json, pkgutil
import waflens.runtime
walked = [m.name for m in pkgutil.walk_packages(waflens.runtime.__path__, "waflens.runtime.")]
for name in walked:
    importlib.import_module(name)
from waflens.runtime import Scorer, SessionScorer
request = Scorer.load(sys.argv[1]).score_request("GET", "/search?q=1%27%20or%201=1--", {"User-Agent": "sqlmap"})
session = SessionScorer.load(sys.argv[2]).score_request("GET", "/", {"User-Agent": "curl"}, client="c", ts=1.0)
print(json.dumps({"walked": walked, "imported": sorted(set(sys.modules) - before),
                  "scores": [request.score, session.score]}))
"""


NUMPY_AND_NUMBA = """
import json, sys
before = set(sys.modules)
import numpy, numba
numba.njit(lambda x: x + 1)(1)   # numba's first compile imports more of its own optional companions (cffi)
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def _fresh(code: str, *args: str) -> str:
    # -I: neither the working directory (the repository's root, with its app/ and data/ folders) nor
    # PYTHONPATH on sys.path; only what is installed
    result = subprocess.run([sys.executable, "-I", "-c", code, *args], capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.splitlines()[-1]


def _top_level(modules) -> set[str]:
    # sysconfig's data module is named after the platform, so it is not in sys.stdlib_module_names
    return {m.split(".")[0] for m in modules if not m.startswith("_sysconfigdata_")}


def test_the_runtime_imports_only_the_stdlib_numpy_and_numba():
    report = json.loads(_fresh(PROBE, str(FIXTURES / "request"), str(FIXTURES / "session")))
    numpy_and_numba = _top_level(json.loads(_fresh(NUMPY_AND_NUMBA)))
    walked = set(report["walked"])
    assert {"waflens.runtime.scorer", "waflens.runtime.session_state", "waflens.runtime.hot_swap",
            "waflens.runtime.middleware", "waflens.runtime.artifact", "waflens.runtime.kernels.forest"} <= walked
    imported = report["imported"]
    assert walked <= set(imported)
    ours = [m for m in imported if m.split(".")[0] == "waflens"]
    assert all(m == "waflens" or m.startswith("waflens.runtime") for m in ours), \
        f"the runtime imports other waflens packages: {[m for m in ours if not m.startswith('waflens.runtime')]}"
    others = sorted(_top_level(imported) - set(sys.stdlib_module_names) - THIRD_PARTY - numpy_and_numba - {"waflens"})
    assert not others, f"the runtime imports beyond the stdlib, numpy and numba: {others}"
    assert all(0 < score <= 1 for score in report["scores"])


def test_each_runtime_module_imports_only_the_stdlib_numpy_numba_and_the_runtime():
    import waflens.runtime

    wrong = []
    for folder in waflens.runtime.__path__:
        for source in sorted(Path(folder).rglob("*.py")):
            if {"build", "fixtures"} & set(source.relative_to(folder).parts):
                continue
            for node in ast.walk(ast.parse(source.read_text(), str(source))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top == "waflens" and not name.startswith("waflens.runtime") \
                            or top not in set(sys.stdlib_module_names) | {"numpy", "numba", "waflens"}:
                        wrong.append(f"{source.name}:{node.lineno} imports {name}")
    assert not wrong, wrong
