"""The exported model: a directory with ``model.npz`` (arrays only) and ``manifest.json``.

No pickle: ``np.load(..., allow_pickle=False)``. The manifest names the schema and
feature-spec versions, the feature order, the token lists the runtime evaluates,
score thresholds, metrics and the sha256 of every file. Loading verifies all of it
and refuses, with one clear message, anything corrupt, altered or too new.

Imports only the standard library and numpy: the runtime uses it.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

ARTIFACT_SCHEMA_VERSION = 1
MODEL_FILE = "model.npz"
MANIFEST_FILE = "manifest.json"


class ArtifactError(ValueError):
    """An artifact that cannot be used: missing, corrupt, altered or from a newer schema.

    Defined here (not in data.errors) because the runtime may import nothing but
    numpy, numba and the standard library; the CLI maps it to the input-error code.
    """

    exit_code = 3


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_artifact(directory: str | os.PathLike, arrays: dict[str, np.ndarray], manifest: dict) -> Path:
    """Write atomically: files go to a temporary sibling directory that is renamed into place."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    if directory.exists():
        raise ArtifactError(f"{directory} already exists: choose a new --out directory")
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        with open(staging / MODEL_FILE, "wb") as handle:
            np.savez(handle, **arrays)
        manifest = {**manifest, "schema_version": ARTIFACT_SCHEMA_VERSION,
                    "files": {MODEL_FILE: sha256_of(staging / MODEL_FILE)}}
        (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(staging, 0o777 & ~umask)  # mkdtemp makes it 0700; workers often run as another user
        os.rename(staging, directory)
    except BaseException:
        for child in staging.glob("*"):
            child.unlink()
        staging.rmdir()
        raise
    return directory


def read_artifact(directory: str | os.PathLike, expected_spec_version: str | None = None
                  ) -> tuple[dict[str, np.ndarray], dict]:
    """Arrays and manifest, after checking schema, feature spec and every file's hash.

    The directory is resolved once, first: through a registry alias (``production``,
    a symlink that may be switched at any moment) the manifest and ``model.npz``
    then come from the same version, never one from each.
    """
    directory = Path(os.path.realpath(directory))
    manifest_path = directory / MANIFEST_FILE
    if not manifest_path.is_file():
        raise ArtifactError(f"{directory} is not a waflens model: {MANIFEST_FILE} is missing")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as error:
        raise ArtifactError(f"{manifest_path} is not valid JSON ({error})") from None
    version = manifest.get("schema_version")
    if not isinstance(version, int) or version > ARTIFACT_SCHEMA_VERSION:
        raise ArtifactError(f"{directory} has artifact schema {version!r}; this waflens reads up to "
                            f"{ARTIFACT_SCHEMA_VERSION}: upgrade waflens or export the model again")
    spec = manifest.get("feature_spec", {}).get("version")
    if expected_spec_version is not None and spec != expected_spec_version:
        raise ArtifactError(f"{directory} was trained with feature spec {spec!r}, this runtime computes "
                            f"{expected_spec_version!r}: retrain or use the matching waflens version")
    files = manifest.get("files") or {}
    if MODEL_FILE not in files:
        raise ArtifactError(f"{manifest_path} lists no {MODEL_FILE}")
    for name, expected in files.items():
        path = directory / name
        if not path.is_file():
            raise ArtifactError(f"{directory} is incomplete: {name} is missing")
        if sha256_of(path) != expected:
            raise ArtifactError(f"{path} does not match the sha256 in the manifest: the artifact is corrupt or altered")
    try:
        with np.load(directory / MODEL_FILE, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError) as error:
        raise ArtifactError(f"{directory / MODEL_FILE} cannot be read ({error})") from None
    return arrays, manifest
