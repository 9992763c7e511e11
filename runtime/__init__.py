"""What a WAF worker imports: load a model that ``waflens train`` exported, and score.

    from waflens.runtime import Scorer
    scorer = Scorer.load("models/production/request")
    result = scorer.score_request("GET", "/search?q=1", headers)

Public names: :class:`Scorer` and :class:`SessionScorer` (``waflens.runtime.scorer``),
:class:`ModelWatcher` (hot swap of a new model, ``waflens.runtime.hot_swap``), the WSGI/ASGI
middleware (``waflens.runtime.middleware``), :func:`read_artifact` and :class:`ArtifactError`
(``waflens.runtime.artifact``), and :class:`WaflensError`, the root of every waflens error.
``waflens.runtime.kernels`` holds the numba kernels and ``waflens.runtime.feature_spec`` the feature
constants: both are internal. Everything here imports numpy, numba and the standard library only.

Names are imported on first use, so ``import waflens.runtime.artifact`` stays light.
"""

from importlib import import_module

_PUBLIC = {
    "Scorer": "waflens.runtime.scorer",
    "SessionScorer": "waflens.runtime.scorer",
    "ScoreResult": "waflens.runtime.scorer",
    "SessionResult": "waflens.runtime.scorer",
    "ModelWatcher": "waflens.runtime.hot_swap",
    "ArtifactError": "waflens.runtime.artifact",
    "read_artifact": "waflens.runtime.artifact",
    "WaflensError": "waflens.runtime.errors",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'waflens.runtime' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + __all__)
