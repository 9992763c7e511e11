"""Fixtures for the workbench tests: a small real database (traffic, clusters, proposed labels) and a
model registry with two versions, built once and copied for each test that changes them."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.data.helpers import combined_line, generated_db, write_log

WORKBENCH = str(Path(__file__).resolve().parents[2] / "app" / "workbench.py")
XSS_PATH = "/search/<script>alert(1)</script>"
XSS_AGENT = "<img src=x onerror=alert(1)> [click](javascript:alert(1))"


def page(name: str) -> str:
    """A page file, as AppTest.switch_page wants it (relative to the workbench script)."""
    return f"pages/{name}.py"


def open_page(name: str, timeout: float = 120):
    """The workbench run through AppTest, switched to a page, after checking it raised nothing."""
    from streamlit.testing.v1 import AppTest

    app = AppTest.from_file(WORKBENCH, default_timeout=timeout).run()
    if name != "overview":
        app.switch_page(page(name)).run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def scalar(db, sql: str):
    """One value from a short read-only connection (the app must not hold the database)."""
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()[0][0]
    finally:
        con.close()


def build_workbench_data(root: Path, *, requests: int = 4000, registry: bool = True) -> Path:
    """Generate, ingest, sessionize, cluster and summarize a small traffic window under ``root``;
    add a request whose path and user agent hold HTML/JS payloads; register two model versions
    (v0001 in production) in ``root/models``. Returns the database path."""
    from datetime import datetime, timezone

    from waflens.clustering.run import ClusterOptions, cluster_sessions
    from waflens.labeling.labels import latest_run
    from waflens.labeling.summarize import summarize_run

    root.mkdir(parents=True, exist_ok=True)
    hostile = write_log(root / "hostile.log", [
        combined_line("203.0.113.9", datetime(2026, 11, 3, 23, 50, tzinfo=timezone.utc),
                      f"GET {XSS_PATH}?q=%3Cb%3E HTTP/1.1", status=404, agent=XSS_AGENT)])
    con = generated_db(root, requests, seed=5, extra_logs=[hostile]).con
    try:
        cluster_sessions(con, ClusterOptions(min_cluster_size=8))
        summarize_run(con, latest_run(con), "offline")
        if registry:
            _register_models(con, root)
    finally:
        con.close()
    return root / "test.duckdb"


def _register_models(con, root: Path) -> None:
    from waflens.scoring.registry import Registry
    from waflens.scoring.train import TrainingOptions, train_request_model, train_session_model

    registry = Registry(root / "models")
    for seed in (1, 2):
        bundle = root / f"bundle-{seed}"
        options = TrainingOptions(n_estimators=20, seed=seed)
        train_request_model(con, bundle / "request", options)
        manifest = train_session_model(con, bundle / "session", options)
        info = registry.register(bundle, metrics={"train_score_median": manifest["metrics"]["train_score_median"],
                                                  "seed": seed},
                                 training=manifest["training"], parent="v0001" if seed == 2 else None,
                                 card=f"# Model card v{seed}\n\nTrained on <b>test</b> traffic.\n",
                                 gates=[{"name": "parity", "passed": True, "value": 0.0, "limit": 1e-9},
                                        {"name": "latency", "passed": True, "value": 80.0, "limit": 2000.0}]
                                 if seed == 2 else None)
        if seed == 1:
            registry.promote(info.version, actor="fixture", reason="first model")
    registry.update_metadata("v0002", extra={"shadow": {"alert_rate_production": 0.01, "alert_rate_candidate": 0.012}})


@pytest.fixture(scope="session")
def workbench_template(tmp_path_factory) -> Path:
    """The database and registry, built once per test session (a few seconds)."""
    root = tmp_path_factory.mktemp("workbench-template")
    build_workbench_data(root)
    return root


@pytest.fixture()
def workbench(workbench_template, tmp_path, monkeypatch) -> Path:
    """A private copy of the template; WAFLENS_DB points at it. Returns the database path."""
    root = tmp_path / "wb"
    shutil.copytree(workbench_template, root, symlinks=True,
                    ignore=shutil.ignore_patterns("*.log", "bundle-*"))
    monkeypatch.setenv("WAFLENS_DB", str(root / "test.duckdb"))
    monkeypatch.delenv("WAFLENS_MODELS", raising=False)
    monkeypatch.setenv("WAFLENS_ANALYST", "test-analyst")
    monkeypatch.setenv("WAFLENS_PSEUDONYM_KEY", os.environ.get("WAFLENS_PSEUDONYM_KEY", "0123456789abcdef" * 2))
    return root / "test.duckdb"
