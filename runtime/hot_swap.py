"""Swap in a newly published model without restarting the worker: old or new, never half.

A registry publishes ``production`` as a symlink to a model directory and moves it
atomically (``os.symlink(new, tmp); os.replace(tmp, "production")``). A
:class:`ModelWatcher` holds the live :class:`~waflens.runtime.scorer.Scorer`; each
:meth:`~ModelWatcher.maybe_reload` (cheap: a clock read, and at most every
``check_interval`` seconds a few ``stat`` calls) loads the new target when the
link's resolved target or its files' stat changed. The new scorer is verified,
built and warmed up *before* one attribute assignment makes it live, so readers
never need a lock. A broken or malformed target (the loader checks its structure
before any kernel runs, see :mod:`waflens.runtime.artifact_checks`) keeps the old scorer,
says why in ``last_error`` and the log, and is not retried until it changes.

Imports only the standard library and the runtime (the runtime's import rule).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from waflens.runtime.artifact import MANIFEST_FILE, MODEL_FILE, ArtifactError
from waflens.runtime.scorer import Scorer

log = logging.getLogger("waflens.hot_swap")


def _stat_key(path: str) -> tuple | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def _signature(target: str) -> tuple:
    """What identifies one published version: the resolved directory and its files' stat."""
    return (target, _stat_key(os.path.join(target, MANIFEST_FILE)), _stat_key(os.path.join(target, MODEL_FILE)))


class ModelWatcher:
    """The live scorer of a model directory or symlink, reloaded when a new version is published.

    ``scorer_options`` go to :meth:`Scorer.load` (``fail_open``, ``max_body_bytes``,
    ``warm_up``). The first load happens here and raises if the artifact is unusable:
    there is no older scorer to fall back on.
    """

    def __init__(self, path: str | os.PathLike, *, check_interval: float = 5.0, **scorer_options):
        if not check_interval >= 0:
            raise ValueError(f"check_interval={check_interval!r}: use a number of seconds >= 0")
        self.path = Path(path)
        self.check_interval = float(check_interval)
        self.scorer_options = scorer_options
        self.last_error: str | None = None   # why the latest published target was refused; None once one loads
        self.reload_failures = 0
        self.reloads = 0
        self._lock = threading.Lock()
        target = os.path.realpath(self.path)
        signature = _signature(target)
        self._scorer = Scorer.load(target, **scorer_options)
        self._loaded = signature
        self._refused: tuple | None = None
        self._next_check = time.monotonic() + self.check_interval

    @property
    def scorer(self) -> Scorer:
        """The live scorer; take it once per request and use that object for the whole request."""
        return self._scorer

    @property
    def target(self) -> str:
        """The resolved directory the live scorer was loaded from."""
        return self._loaded[0]

    def maybe_reload(self, *, force: bool = False) -> bool:
        """Load the published version if it changed; True when a new scorer went live.

        Without ``force`` this checks at most every ``check_interval`` seconds and
        returns at once while another thread is reloading (it keeps the old scorer
        meanwhile). ``force`` checks now, waiting for a reload in progress. Neither
        retries a target that failed until that target changes.
        """
        now = time.monotonic()
        if not force and now < self._next_check:
            return False
        if not self._lock.acquire(blocking=force):
            return False
        try:
            self._next_check = now + self.check_interval
            target = os.path.realpath(self.path)
            signature = _signature(target)
            if signature == self._loaded or signature == self._refused:
                return False
            try:
                scorer = Scorer.load(target, **self.scorer_options)
            except Exception as error:  # an ArtifactError says what is wrong; anything else is a bug, kept out too
                self._refused = signature
                self.reload_failures += 1
                self.last_error = f"{type(error).__name__}: {error}"
                log.warning("waflens: keeping model %s; refused %s (%s)", self._loaded[0], target, self.last_error,
                            exc_info=not isinstance(error, ArtifactError))
                return False
            self._scorer = scorer   # the swap: a single attribute assignment
            self._loaded = signature
            self._refused = None
            self.last_error = None
            self.reloads += 1
            log.info("waflens: now scoring with model %s", target)
            return True
        finally:
            self._lock.release()

    def __repr__(self) -> str:
        return (f"ModelWatcher({str(self.path)!r} -> {self.target!r}, reloads={self.reloads}, "
                f"failures={self.reload_failures})")
