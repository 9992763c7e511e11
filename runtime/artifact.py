"""The exported model: a directory with ``model.npz`` (arrays only) and ``manifest.json``.

No pickle: arrays are parsed from the npz's stored members with numpy's header reader
and nothing else. The manifest names the schema and feature-spec versions, the
feature order, the token lists the runtime evaluates, score thresholds, metrics and
the sha256 of every file; ``manifest_sha256`` is the sha256 of the rest of the
manifest in canonical JSON, so one digest covers the manifest and, through
``files``, every byte of the arrays. Loading verifies all of it and refuses, with
one clear message, anything corrupt, altered, unreadable or too new. What the
arrays must look like for a model to be scored is checked by
:mod:`waflens.runtime.artifact_checks`.

A digest is not a signature: whoever can write the directory can recompute it. It
catches corruption and hand edits; the structural checks are what keep a
malformed-but-resealed artifact from crashing or hanging a worker.

Imports only the standard library and numpy: the runtime uses it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from waflens.runtime.errors import WaflensError

ARTIFACT_SCHEMA_VERSION = 2   # 2: manifest_sha256 covers the manifest; 1 (no digest) still loads, see read_artifact
MODEL_FILE = "model.npz"
MANIFEST_FILE = "manifest.json"
DIGEST_FIELD = "manifest_sha256"
MAX_ARRAYS = 256


class ArtifactError(WaflensError, ValueError):
    """An artifact that cannot be used: missing, corrupt, altered, malformed or from a newer schema.

    A :class:`~waflens.runtime.errors.WaflensError` with the input-error exit code; still a
    ``ValueError`` for workers that caught that before the one exception root.
    """

    exit_code = 3


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def manifest_digest(manifest: dict) -> str:
    """sha256 of the manifest without its digest field: JSON with sorted keys, no spaces, ASCII only."""
    rest = {key: value for key, value in manifest.items() if key != DIGEST_FIELD}
    return hashlib.sha256(json.dumps(rest, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
                          .encode("ascii")).hexdigest()


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
        manifest[DIGEST_FIELD] = manifest_digest(manifest)
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
    """Arrays and manifest, after checking schema, manifest digest, feature spec and every file's hash.

    The directory is resolved once, first: through a registry alias (``production``,
    a symlink that may be switched at any moment) the manifest and ``model.npz``
    then come from the same version, never one from each. Schema-1 artifacts (written
    before the manifest digest) are read without it.
    """
    directory = Path(os.path.realpath(directory))
    manifest_path = directory / MANIFEST_FILE
    if not manifest_path.is_file():
        raise ArtifactError(f"{directory} is not a waflens model: {MANIFEST_FILE} is missing")
    try:
        manifest = json.loads(manifest_path.read_bytes())
    except (OSError, ValueError, RecursionError) as error:
        raise ArtifactError(f"{manifest_path} is not valid JSON ({error})") from None
    if not isinstance(manifest, dict):
        raise ArtifactError(f"{manifest_path} is not a JSON object: the artifact is corrupt; export it again")
    version = manifest.get("schema_version")
    if type(version) is not int or not 1 <= version <= ARTIFACT_SCHEMA_VERSION:
        raise ArtifactError(f"{directory} has artifact schema {version!r}; this waflens reads 1 to "
                            f"{ARTIFACT_SCHEMA_VERSION}: upgrade waflens or export the model again")
    if version >= 2 and manifest.get(DIGEST_FIELD) != manifest_digest(manifest):
        raise ArtifactError(f"{manifest_path} does not match its {DIGEST_FIELD}: the manifest is corrupt or was "
                            "edited; export the model again")
    spec = manifest.get("feature_spec")
    spec_version = spec.get("version") if isinstance(spec, dict) else None
    if expected_spec_version is not None and spec_version != expected_spec_version:
        raise ArtifactError(f"{directory} was trained with feature spec {spec_version!r}, this runtime computes "
                            f"{expected_spec_version!r}: retrain or use the matching waflens version")
    files = manifest.get("files")
    if not isinstance(files, dict) or MODEL_FILE not in files:
        raise ArtifactError(f"{manifest_path} lists no {MODEL_FILE} in its files: export the model again")
    model_bytes = b""
    for name, expected in files.items():
        if not isinstance(name, str) or name in ("", ".", "..") or "/" in name or "\\" in name:
            raise ArtifactError(f"{manifest_path} lists {name!r} in its files: only file names in the model "
                                "directory are allowed; export the model again")
        path = directory / name
        if not path.is_file():
            raise ArtifactError(f"{directory} is incomplete: {name} is missing")
        try:
            data = path.read_bytes()
        except OSError as error:
            raise ArtifactError(f"{path} cannot be read ({error.strerror})") from None
        if hashlib.sha256(data).hexdigest() != expected:
            raise ArtifactError(f"{path} does not match the sha256 in the manifest: the artifact is corrupt or altered")
        if name == MODEL_FILE:
            model_bytes = data   # parsed from the bytes that were hashed, not read again
    return read_arrays(model_bytes, directory / MODEL_FILE), manifest


def read_arrays(data: bytes, path: Path) -> dict[str, np.ndarray]:
    """The arrays of an npz file's bytes, refusing anything ``np.savez`` does not write.

    Members must be stored (not compressed: no zip bombs), named ``<array>.npy``, once
    each, and hold exactly the bytes their header announces; object dtypes are refused
    (no pickle). Every failure is an :class:`ArtifactError` naming the file.
    """
    def refuse(what: str) -> ArtifactError:
        return ArtifactError(f"{path} {what}: the artifact is corrupt or altered; export it again")

    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError) as error:
        raise refuse(f"is not a readable npz archive ({error})") from None
    arrays: dict[str, np.ndarray] = {}
    with archive:
        members = archive.infolist()
        if len(members) > MAX_ARRAYS:
            raise refuse(f"holds {len(members)} members, more than {MAX_ARRAYS}")
        for info in members:
            name = info.filename[:-4] if info.filename.endswith(".npy") else None
            if not name or name in arrays:
                raise refuse(f"holds an unexpected member {info.filename!r}")
            if info.compress_type != zipfile.ZIP_STORED or info.file_size != info.compress_size:
                raise refuse(f"stores array {name!r} compressed (waflens writes uncompressed npz only)")
            try:
                member = bytearray(archive.read(info))   # bytearray: the arrays are writable, as np.load's are
                arrays[name] = _npy_array(member)
            except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError, TypeError, SyntaxError,
                    OverflowError, MemoryError) as error:
                raise refuse(f"holds an unreadable array {name!r} ({error})") from None
    return arrays


def _npy_array(member: bytearray) -> np.ndarray:
    """The array of one ``.npy`` member, viewing its bytes (no copy); ValueError when malformed."""
    handle = io.BytesIO(member)
    version = np.lib.format.read_magic(handle)
    if version == (1, 0):
        shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(handle)
    elif version == (2, 0):
        shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(handle)
    else:
        raise ValueError(f"npy format {version} is not supported")
    if dtype.hasobject:
        raise ValueError(f"dtype {dtype} holds Python objects")
    count = 1
    for size in shape:
        count *= size
    offset = handle.tell()
    if offset + count * dtype.itemsize != len(member):
        raise ValueError(f"its header announces shape {shape} of {dtype} ({count * dtype.itemsize} bytes), the "
                         f"file holds {len(member) - offset} bytes")
    array = np.frombuffer(member, dtype=dtype, count=count, offset=offset)
    return array.reshape(shape[::-1]).T if fortran_order else array.reshape(shape)
