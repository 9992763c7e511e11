"""The stored artifacts and expected numbers of fixtures/ (made by fixtures/make_fixtures.py).

Only the standard library here: tests/runtime runs in a venv that holds waflens-runtime, numpy, numba
and pytest, nothing else.
"""

from __future__ import annotations

import json
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures"
REGENERATE = "PYTHONHASHSEED=0 .venv/bin/python tests/runtime/fixtures/make_fixtures.py"


def stored(name: str) -> list[dict]:
    """requests.json or sessions.json; bodies are stored as latin-1 text (one character a byte)."""
    return json.loads((FIXTURES / name).read_text())


def request_args(record: dict) -> tuple:
    """(method, target, headers, body) as a server hands them to the scorer."""
    return record["method"], record["target"], [tuple(h) for h in record["headers"]], record["body"].encode("latin-1")
