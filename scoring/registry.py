"""The model registry: immutable, numbered model versions and the aliases WAF workers follow.

A retrain produces a *bundle* (a directory with ``request/`` and/or ``session/``
artifacts, see :mod:`waflens.runtime.artifact`). Registering verifies and files it as the
next version; promoting points ``production`` at a version. Workers load
``<root>/production/request`` (a :class:`~waflens.runtime.hot_swap.ModelWatcher` notices
the switch), so a promotion or a rollback is one ``rename`` and needs no restart.

Layout::

    <root>/
      versions/v0001/{request/, session/, version.json, MODEL_CARD.md (optional)}
      versions/v0002/...
      production -> versions/v0002      relative symlink, replaced atomically
      candidate  -> versions/v0003
      history.jsonl                     append-only alias changes, one JSON object a line:
                                        {"at", "alias", "version", "previous", "actor", "reason", "action"}
      .lock                             fcntl.flock for registering and aliasing; never held while loading

Why this shape: a version directory appears whole or not at all (it is built in a
staging directory and renamed in), its artifacts never change afterwards (only
``version.json`` and the model card may, for facts known later such as gate or
shadow results), and an alias is a symlink swapped by ``os.replace``, so a reader
resolves either the old or the new version, never a mix (``read_artifact`` resolves
the link once). Readers take no lock; writers serialise on ``.lock`` so version ids
are allocated once and the history stays in the order the switches happened.

Rollback rule: the production history is replayed as a stack. Every change of
``production`` that is not a rollback (a promotion, or ``set_alias("production")``)
pushes the version it replaced; a rollback pops it. :meth:`Registry.rollback` goes
back to the top of the stack, so repeated rollbacks walk back through earlier
promotions (v1 → v2 → v3, rollback → v2, rollback → v1) and never bounce between two
versions; a promotion after a rollback is undone by the next rollback. Entries that
equal the current production (a history line lost in a crash) are skipped.
"""

from __future__ import annotations

import errno
import fcntl
import getpass
import json
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, NamedTuple

from waflens.data.errors import ConfigError, InputError
from waflens.runtime.artifact import ArtifactError, read_artifact

DEFAULT_ROOT_ENV = "WAFLENS_MODELS"
LEVELS = ("request", "session")
PRODUCTION = "production"
VERSION_FILE = "version.json"
CARD_FILE = "MODEL_CARD.md"
HISTORY_FILE = "history.jsonl"
LOCK_FILE = ".lock"
VERSION_SCHEMA = 1
_VERSION_ID = re.compile(r"^v(\d{4,})$")
_ALIAS_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
_RESERVED = {"versions"}
# Facts about how the artifacts were made; update_metadata may add to version.json but not rewrite these.
_FIXED_KEYS = {"schema_version", "version", "created_at", "levels", "metrics", "training", "labels", "parent"}


class RegistryError(InputError):
    """An unknown version or alias, a bundle that cannot be registered, nothing to roll back to."""


class VersionInfo(NamedTuple):
    version: str                 # "v0007"
    path: Path                   # <root>/versions/v0007
    created_at: str              # UTC, ISO 8601
    aliases: tuple[str, ...]     # aliases pointing here now, e.g. ("production",)
    metrics: dict
    training: dict
    labels: dict                 # the label snapshot the training used
    parent: str | None           # the version this one was retrained from
    gates: dict | None           # gate / shadow results, once known
    levels: tuple[str, ...]      # ("request", "session")


def default_registry_root(db_path: str | os.PathLike) -> Path:
    """``$WAFLENS_MODELS``, else ``models/`` beside the database (models belong to the data they learnt)."""
    return Path(os.environ.get(DEFAULT_ROOT_ENV) or Path(db_path).parent / "models")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _actor(actor: str | None) -> str:
    if actor:
        return actor
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in some containers
        return "unknown"


def make_private_dir(path: Path) -> None:
    """Create ``path`` 0700 whatever the umask (models and run reports describe private traffic); an existing
    directory keeps its mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        return
    os.chmod(path, 0o700)


def _write_json_atomically(path: Path, content: dict) -> None:
    _write_text_atomically(path, json.dumps(content, indent=2, sort_keys=True, default=str) + "\n")


def _write_text_atomically(path: Path, text: str) -> None:
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Registry:
    """Model versions under ``root`` (see the module docstring for the layout and rules)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.versions_dir = self.root / "versions"

    def __repr__(self) -> str:
        return f"Registry({str(self.root)!r})"

    # --- reading (no lock) ---
    def _check_root(self) -> None:
        if self.root.exists() and not self.root.is_dir():
            raise ConfigError(f"model registry {self.root} is not a directory: pass --models DIR or set "
                              f"{DEFAULT_ROOT_ENV} to a directory")

    def _version_ids(self) -> list[str]:
        self._check_root()
        if not self.versions_dir.is_dir():
            return []
        ids = [p.name for p in self.versions_dir.iterdir() if _VERSION_ID.match(p.name) and p.is_dir()]
        return sorted(ids, key=lambda name: int(name[1:]))

    def _aliases(self) -> dict[str, str]:
        """{alias: version} of every alias symlink under the root."""
        if not self.root.is_dir():
            return {}
        found = {}
        for entry in self.root.iterdir():
            if entry.is_symlink() and _ALIAS_NAME.match(entry.name) and entry.name not in _RESERVED:
                target = Path(os.readlink(entry))
                if target.parent == Path("versions") and _VERSION_ID.match(target.name):
                    found[entry.name] = target.name
        return found

    def _info(self, version: str, aliases: dict[str, str]) -> VersionInfo:
        path = self.versions_dir / version
        try:
            meta = json.loads((path / VERSION_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise RegistryError(f"version {version} in {self.root} is damaged: {VERSION_FILE} cannot be read "
                                f"({type(error).__name__}); restore it from a backup") from None
        return VersionInfo(version, path, meta.get("created_at", ""),
                           tuple(sorted(a for a, v in aliases.items() if v == version)),
                           meta.get("metrics") or {}, meta.get("training") or {}, meta.get("labels") or {},
                           meta.get("parent"), meta.get("gates"), tuple(meta.get("levels") or ()))

    def versions(self) -> list[VersionInfo]:
        """Every registered version, oldest first."""
        aliases = self._aliases()
        return [self._info(v, aliases) for v in self._version_ids()]

    def _resolve(self, version_or_alias: str) -> str:
        """The version id a name means: a version id as is, an alias as the version it points to now."""
        name = str(version_or_alias)
        if _VERSION_ID.match(name):
            if (self.versions_dir / name / VERSION_FILE).is_file():
                return name
        else:
            pointed = self.alias(name) if _ALIAS_NAME.match(name) else None
            if pointed is not None:
                return pointed
        known = self._version_ids()
        hint = f"known: {known[0]} to {known[-1]}" if known else "the registry holds no versions yet"
        raise RegistryError(f"unknown model version or alias {name[:80]!r} in {self.root} ({hint}; "
                            "`waflens models list` shows them)")

    def get(self, version_or_alias: str) -> VersionInfo:
        """The version a version id or alias names; RegistryError when there is none."""
        return self._info(self._resolve(version_or_alias), self._aliases())

    def metadata(self, version_or_alias: str) -> dict:
        """The whole ``version.json`` of a version (what :class:`VersionInfo` holds, plus later additions)."""
        version = self._resolve(version_or_alias)
        return json.loads((self.versions_dir / version / VERSION_FILE).read_text(encoding="utf-8"))

    def card(self, version_or_alias: str) -> str | None:
        """The version's model card (Markdown), or None when it has none."""
        path = self.versions_dir / self._resolve(version_or_alias) / CARD_FILE
        return path.read_text(encoding="utf-8") if path.is_file() else None

    def alias(self, name: str) -> str | None:
        """The version ``name`` points to, or None when the alias is not set."""
        self._check_root()
        return self._aliases().get(name)

    def path(self, version_or_alias: str, level: str | None = None) -> Path:
        """Where to load from. For an alias the path goes *through* the symlink
        (``<root>/production/request``), so a watcher on it follows later switches."""
        version = self._resolve(version_or_alias)
        base = self.root / version_or_alias if version != version_or_alias else self.versions_dir / version
        if level is None:
            return base
        if level not in LEVELS:
            raise RegistryError(f"unknown model level {level!r}: use one of {', '.join(LEVELS)}")
        if not (self.versions_dir / version / level).is_dir():
            raise RegistryError(f"{version_or_alias} ({version}) has no {level} model: register a bundle with "
                                f"{level}/ or pick another version")
        return base / level

    # --- writing (under the lock) ---
    def _unwritable(self, error: OSError) -> ConfigError:
        return ConfigError(f"cannot write the model registry {self.root} ({error.strerror}): pass --models DIR "
                           f"or set {DEFAULT_ROOT_ENV} to a writable directory")

    def _ensure_root(self) -> None:
        self._check_root()
        try:
            make_private_dir(self.root)
            self.versions_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise self._unwritable(error) from None

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self._ensure_root()
        try:
            handle = os.open(self.root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise self._unwritable(error) from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield
        finally:
            os.close(handle)  # closing releases the flock

    def register(self, bundle: str | os.PathLike, *, metrics: dict, training: dict, labels: dict | None = None,
                 parent: str | None = None, gates: dict | None = None, card: str | None = None,
                 move: bool = True) -> VersionInfo:
        """File a verified bundle as the next version; with ``move`` the bundle's level directories are
        moved in (renamed when on the same file system), otherwise copied.

        Every level is verified with :func:`read_artifact` in the staging directory, i.e.
        exactly what will be registered; a corrupt bundle is refused and left where it was.
        """
        bundle = Path(bundle)
        if not bundle.is_dir():
            raise RegistryError(f"{bundle} is not a directory: pass the bundle directory that holds request/ "
                                "and/or session/")
        levels = tuple(level for level in LEVELS if (bundle / level).is_dir())
        if not levels:
            raise RegistryError(f"{bundle} holds no model: a bundle needs a request/ and/or session/ artifact "
                                "directory (written by `waflens train --out <bundle>/<level>`)")
        parent_version = self._resolve(parent) if parent is not None else None
        self._ensure_root()    # staging lives in versions/: the final rename stays on one file system
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.versions_dir))
        moved: list[tuple[Path, Path]] = []
        try:
            for level in levels:
                if move and _rename(bundle / level, staging / level):
                    moved.append((bundle / level, staging / level))
                else:
                    shutil.copytree(bundle / level, staging / level)
                self._verify(staging / level, level, bundle / level)
            if card is not None:
                (staging / CARD_FILE).write_text(card, encoding="utf-8")
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(staging, 0o777 & ~umask)  # mkdtemp makes it 0700; workers often run as another user
            meta = {"schema_version": VERSION_SCHEMA, "created_at": _now(), "metrics": metrics,
                    "training": training, "labels": labels or {}, "parent": parent_version, "gates": gates,
                    "levels": list(levels)}
            with self._locked():
                version = self._next_id()
                _write_json_atomically(staging / VERSION_FILE, {**meta, "version": version})
                os.rename(staging, self.versions_dir / version)
        except BaseException:
            for source, target in reversed(moved):  # give the bundle back as it was
                if target.exists() and not source.exists():
                    os.rename(target, source)
            shutil.rmtree(staging, ignore_errors=True)
            raise
        if move:
            for level in levels:
                if (bundle / level).exists():   # copied across file systems: remove the original now
                    shutil.rmtree(bundle / level)
            _remove_if_empty(bundle)
        return self.get(version)

    @staticmethod
    def _verify(staged: Path, level: str, source: Path) -> None:
        """Verify the staged copy, but name the bundle's directory in messages (staging is deleted)."""
        try:
            _, manifest = read_artifact(staged)
        except ArtifactError as error:
            message = str(error).replace(os.path.realpath(staged), str(source)).replace(str(staged), str(source))
            raise RegistryError(f"refusing to register the bundle: {message}") from None
        if manifest.get("level") != level:
            raise RegistryError(f"refusing to register the bundle: {source} holds a {manifest.get('level')!r}-level "
                                f"model; move it to {manifest.get('level')}/")

    def _next_id(self) -> str:
        ids = self._version_ids()
        return f"v{(int(ids[-1][1:]) + 1 if ids else 1):04d}"

    def update_metadata(self, version: str, *, gates: dict | None = None, card: str | None = None,
                        extra: dict | None = None) -> VersionInfo:
        """Record what is known only after registering (gate and shadow results, the model card).

        The artifacts never change, nor do the facts of how they were made (``_FIXED_KEYS``).
        """
        clash = sorted(_FIXED_KEYS & set(extra or {}))
        if clash:
            raise RegistryError(f"update_metadata cannot change {', '.join(clash)} of a registered version: "
                                "register a new version instead")
        with self._locked():
            version = self._resolve(version)
            path = self.versions_dir / version
            meta = json.loads((path / VERSION_FILE).read_text(encoding="utf-8"))
            meta.update(extra or {})
            if gates is not None:
                meta["gates"] = gates
            meta["updated_at"] = _now()
            _write_json_atomically(path / VERSION_FILE, meta)
            if card is not None:
                _write_text_atomically(path / CARD_FILE, card)
        return self.get(version)

    def set_alias(self, name: str, version: str, *, actor: str | None = None, reason: str = "") -> None:
        """Point ``name`` at a version in one ``os.replace`` and append the change to the history.

        Setting an alias to the version it already names changes nothing and records nothing.
        """
        with self._locked():
            self._set_alias_locked(name, self._resolve(version), actor, reason, "set")

    def _set_alias_locked(self, name: str, version: str, actor: str | None, reason: str, action: str) -> str | None:
        if not _ALIAS_NAME.match(name) or name in _RESERVED or _VERSION_ID.match(name):
            raise RegistryError(f"{name[:80]!r} cannot be an alias: use lower-case letters, digits, '-' or '_' "
                                "(starting with a letter, not a version id, not 'versions')")
        link = self.root / name
        if (link.exists() or link.is_symlink()) and name not in self._aliases():
            raise RegistryError(f"{link} exists and is not an alias: move it away or choose another alias name")
        previous = self._aliases().get(name)
        if previous == version:
            return previous
        staging = self.root / f".{name}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
        os.symlink(os.path.join("versions", version), staging)
        try:
            os.replace(staging, link)
        except BaseException:
            staging.unlink(missing_ok=True)
            raise
        entry = {"at": _now(), "alias": name, "version": version, "previous": previous, "actor": _actor(actor),
                 "reason": reason, "action": action}
        with open(self.root / HISTORY_FILE, "a", encoding="utf-8") as history:
            history.write(json.dumps(entry, sort_keys=True) + "\n")
            history.flush()
            os.fsync(history.fileno())
        return previous

    def history(self, alias: str | None = None) -> list[dict]:
        """The alias changes, oldest first (all aliases, or one)."""
        try:
            lines = (self.root / HISTORY_FILE).read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        entries = []
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:  # a line cut short by a crash mid-write
                continue
            if isinstance(entry, dict) and (alias is None or entry.get("alias") == alias):
                entries.append(entry)
        return entries

    def promote(self, version: str, *, actor: str | None = None, reason: str = "") -> str | None:
        """Point ``production`` at ``version``; returns the version it pointed to before (None the first time)."""
        with self._locked():
            version = self._resolve(version)
            previous = self._aliases().get(PRODUCTION)
            self._set_alias_locked(PRODUCTION, version, actor, reason, "promote")
        return previous

    def rollback_target(self) -> str:
        """The version :meth:`rollback` would go back to (see the rule in the module docstring)."""
        current = self.alias(PRODUCTION)
        stack = self._rollback_stack()
        while stack and stack[-1] == current:
            stack.pop()
        if current is None:
            raise RegistryError(f"nothing to roll back: {self.root} has no production version yet")
        if not stack or stack[-1] is None:
            raise RegistryError(f"nothing to roll back to: production ({current}) has no earlier production version "
                                "left in the history; promote a version instead")
        return stack[-1]

    def _rollback_stack(self) -> list[str | None]:
        stack: list[str | None] = []
        for entry in self.history(PRODUCTION):
            if entry.get("action") == "rollback":
                while stack and stack.pop() != entry.get("version"):
                    pass
            else:
                stack.append(entry.get("previous"))
        return stack

    def rollback(self, *, actor: str | None = None, reason: str = "") -> str:
        """Point ``production`` back to the version before the latest promotion not yet rolled back;
        returns that version."""
        with self._locked():
            target = self.rollback_target()
            self._set_alias_locked(PRODUCTION, target, actor, reason, "rollback")
        return target


def _rename(source: Path, target: Path) -> bool:
    """Move a directory by rename; False (nothing done) when it is on another file system."""
    try:
        os.rename(source, target)
    except OSError as error:
        if error.errno == errno.EXDEV:
            return False
        raise
    return True


def _remove_if_empty(directory: Path) -> None:
    try:
        directory.rmdir()
    except OSError:
        pass  # the bundle held more than the models: leave the rest to its owner
