"""Hand-edited artifacts, as an adversary (or a careless operator) makes them: change the arrays or the
manifest, then recompute every hash the format documents (docs/embedding.md, "What an artifact holds"),
so that only the loader's structural checks stand between the edit and the WAF worker.

The digest is recomputed here from its documented definition, not with the exporter's code, so a change
of the format that the documentation does not follow breaks these tests.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Callable

import numpy as np

MODEL = "model.npz"
MANIFEST = "manifest.json"
DIGEST_FIELD = "manifest_sha256"


def canonical_manifest(manifest: dict) -> bytes:
    """The bytes the manifest digest covers: the manifest without its digest field, canonical JSON."""
    rest = {k: v for k, v in manifest.items() if k != DIGEST_FIELD}
    return json.dumps(rest, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def reseal(directory: Path) -> None:
    """Recompute the sha256 of every listed file, then the manifest digest (schema 2 and later)."""
    manifest = json.loads((directory / MANIFEST).read_text())
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if isinstance(files, dict):
        for name in files:
            if (directory / name).is_file():
                files[name] = hashlib.sha256((directory / name).read_bytes()).hexdigest()
    if isinstance(manifest, dict) and DIGEST_FIELD in manifest:
        manifest[DIGEST_FIELD] = hashlib.sha256(canonical_manifest(manifest)).hexdigest()
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))


def arrays_of(directory: Path) -> dict[str, np.ndarray]:
    with np.load(directory / MODEL, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def write_arrays(directory: Path, arrays: dict[str, np.ndarray]) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    (directory / MODEL).write_bytes(buffer.getvalue())


def tampered(source: Path, into: Path, *, arrays: Callable[[dict], None] | None = None,
             manifest: Callable[[dict], None] | None = None, model_bytes: Callable[[bytes], bytes] | None = None,
             seal: bool = True) -> Path:
    """A copy of ``source`` with its arrays, manifest or raw model bytes edited in place by the callables."""
    shutil.copytree(source, into)
    if arrays is not None:
        edited = arrays_of(into)
        arrays(edited)
        write_arrays(into, edited)
    if model_bytes is not None:
        (into / MODEL).write_bytes(model_bytes((into / MODEL).read_bytes()))
    if manifest is not None:
        stored = json.loads((into / MANIFEST).read_text())
        manifest(stored)
        (into / MANIFEST).write_text(json.dumps(stored))
    if seal:
        reseal(into)
    return into


def run_isolated(code: str, timeout: float, cwd: Path | None = None) -> subprocess.CompletedProcess | None:
    """Run ``code`` in a fresh interpreter: a crash there (SIGSEGV) or a hang fails a test instead of pytest.
    Returns None when it did not finish within ``timeout`` seconds."""
    try:
        return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                              timeout=timeout, cwd=cwd)
    except subprocess.TimeoutExpired:
        return None
