"""``waflens retrain``: the cron job that turns new traffic and analyst labels into a better model, safely.

Stages: ingest new files from the configured sources → sessionize → cluster →
summarize (offline unless configured) → train request and session models (the
session model with the analysts' feedback) on everything before a time split →
register the candidate → gates on the held-out latest window → shadow run →
drift → model card → promote, or keep production and say which gate failed.
Each stage tells ``progress`` (a ``StageReporter``: app/progress.py draws bars and
JSON lines) when it begins, how far it got and its counts when it ends. On a cold
numba cache a child process compiles training's kernels meanwhile
(waflens.scoring.jit_warmup); a ``compile`` stage waits for it before training.

Safety while the workbench is open on the same database: DuckDB admits one
writing process, so every write here is a short transaction on its own
connection (the app's label writes wait for it and get through), and training
reads an in-memory snapshot of the tables it needs, taken in seconds, so no lock
is held while models fit. A file lock (``<registry>/retrain.lock``) keeps two
runs from overlapping. A run with no new traffic and no new analyst labels or
allowlist changes since the last registered version does nothing.

Exit codes (also in the README): 0 promoted (or candidate registered with
``--no-promote``), 10 nothing new, 11 a gate failed (production kept), 75 lock
held by another run (EX_TEMPFAIL: retry later); errors keep the general codes
(3 input, 4 database, 5 configuration, 6 not enough data, 1 bug). Every run
writes a JSON report to ``<registry>/runs/`` and, when configured, a Prometheus
textfile for node_exporter.
"""

from __future__ import annotations

import fcntl
import glob
import json
import os
import shutil
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, NamedTuple, Protocol

import duckdb

from waflens.data.errors import InputError, WaflensError
from waflens.data.interrupts import DeferredInterrupt, InterruptedAfterFile, InterruptedDerived, was_interrupted
from waflens.pipeline.schema import ensure_schemas
from waflens.scoring.evaluation import DEFAULT_HOLDOUT_FRACTION, EVALUATION_STEPS, evaluate, holdout_split
from waflens.scoring.gates import GateConfig

EXIT_PROMOTED = 0
EXIT_NOTHING_NEW = 10
EXIT_GATE_FAILED = 11
EXIT_LOCK_HELD = 75
EXIT_INTERRUPTED = 130
RETRAIN_EXIT_CODES = {EXIT_PROMOTED: "promoted (or candidate registered with --no-promote)",
                      EXIT_NOTHING_NEW: "nothing new since the last version: nothing done",
                      EXIT_GATE_FAILED: "a promotion gate failed: production kept",
                      EXIT_LOCK_HELD: "another retrain holds the lock: try again later",
                      EXIT_INTERRUPTED: "interrupted (Ctrl-C): ingested files kept, no half-registered model; "
                                        "run it again"}
SOURCES_ENV = "WAFLENS_SOURCES"              # os.pathsep-separated files or globs
PROMETHEUS_ENV = "WAFLENS_PROMETHEUS_TEXTFILE"
SNAPSHOT_TABLES = ("requests", "request_features", "sessions", "session_features", "cluster_runs",
                   "session_clusters", "cluster_profiles", "label_events", "allowlist", "session_label_imports")


@dataclass
class RetrainOptions:
    sources: tuple[str, ...] = ()            # files or globs to ingest [default: $WAFLENS_SOURCES]
    registry_root: Path | None = None        # [default: $WAFLENS_MODELS or <db dir>/models]
    provider: str | None = None              # [default: $WAFLENS_LLM_PROVIDER, the LLM settings file, offline]
    trees: int = 100
    seed: int = 0
    holdout_fraction: float = DEFAULT_HOLDOUT_FRACTION  # the latest quarter of sessions is held out for the gates
    min_cluster_size: int | None = None      # [default: the settings' min_cluster_size]
    gates: GateConfig = field(default_factory=GateConfig)
    force: bool = False                      # retrain even when nothing is new
    promote: bool = True
    prometheus_textfile: Path | None = None  # [default: $WAFLENS_PROMETHEUS_TEXTFILE]
    actor: str = "waflens-retrain"
    gap_minutes: float = 30.0
    write_timeout_s: float = 120.0           # how long a write waits for the workbench's short writes
    allow_label_loss: bool = False           # let feedback_coverage pass (with a warning) on fewer labelled sessions


class RetrainResult(NamedTuple):
    status: str          # promoted | candidate | nothing_to_do | gate_failed | lock_held | error
    exit_code: int
    report: dict


def _quiet(message: str) -> None:
    pass


class StageReporter(Protocol):
    """What a progress display is told (app/progress.py draws it); a plain ``progress(message)`` callable
    is told ``"<stage>…"`` as each stage starts, and the final message."""

    def begin(self, stage: str, total: int | None = None, unit: str = "") -> None: ...
    def advance(self, done: int, note: str = "") -> None: ...
    def end(self, stage: str, seconds: float, counts: dict) -> None: ...
    def message(self, text: str) -> None: ...


class _Lines:
    def __init__(self, progress: Callable[[str], None]):
        self.progress = progress

    def begin(self, stage: str, total: int | None = None, unit: str = "") -> None:
        self.progress(f"{stage}…")

    def advance(self, done: int, note: str = "") -> None:
        pass

    def end(self, stage: str, seconds: float, counts: dict) -> None:
        pass

    def message(self, text: str) -> None:
        self.progress(text)


def _no_check() -> None:
    pass


class Stage:
    """The running stage: ``advance`` moves its progress bar, ``counts`` go to its progress line; each advance
    is a safe point where a deferred Ctrl-C stops the run (``check``)."""

    def __init__(self, reporter: StageReporter, check: Callable[[], None] = _no_check):
        self.reporter = reporter
        self.counts: dict = {}
        self.done = 0
        self.check = check

    def advance(self, note: str = "", by: int = 1) -> None:
        self.done += by
        self.reporter.advance(self.done, note)
        self.check()


class _Interrupts:
    """Ctrl-C during a retrain is acted on at safe points (stage starts and ends, each step of a stage): the
    database writes and the registry are then never cut half-way. From registering the candidate to promoting
    it no point is safe: that part finishes. A second Ctrl-C stops at once (data/interrupts.py)."""

    def __init__(self, deferred):
        self.deferred = deferred
        self.stage = "start-up"
        self.committing = False

    def check(self) -> None:
        if self.deferred is not None and not self.committing:
            self.deferred.check()


def retrain(db_path: str | os.PathLike, options: RetrainOptions | None = None,
            progress: Callable[[str], None] | StageReporter = _quiet) -> RetrainResult:
    """Run every stage; returns the status, the exit code and the run report (also written to disk)."""
    from waflens.scoring.jit_warmup import Warmup
    from waflens.scoring.registry import Registry, default_registry_root, make_private_dir

    options = options or RetrainOptions()
    db_path = Path(db_path)
    root = Path(options.registry_root or default_registry_root(db_path))
    started = datetime.now(timezone.utc)
    report: dict = {"started_at": started.isoformat(timespec="seconds"), "database": str(db_path),
                    "registry": str(root), "stages": {}, "production_version": None, "candidate_version": None}
    clock = time.perf_counter()
    reporter = progress if hasattr(progress, "begin") else _Lines(progress)

    interrupts = _Interrupts(None)

    @contextmanager
    def stage(name: str, total: int | None = None, unit: str = ""):
        interrupts.check()
        interrupts.stage = name
        reporter.begin(name, total, unit)
        begun = time.perf_counter()
        current = Stage(reporter, interrupts.check)
        try:
            yield current
        finally:
            report["stages"][name] = round(time.perf_counter() - begun, 3)
            reporter.end(name, report["stages"][name], current.counts)
        interrupts.check()

    def finish(status: str, code: int, message: str) -> RetrainResult:
        if interrupts.committing and interrupts.deferred is not None and interrupts.deferred.requested:
            message += "; Ctrl-C came while the new version was registered and promoted: that finished first"
        report.update(status=status, exit_code=code, message=message,
                      duration_seconds=round(time.perf_counter() - clock, 3))
        _write_report(root, started, report, options)
        reporter.message(message)
        return RetrainResult(status, code, report)

    try:
        make_private_dir(root)
        lock = open(root / "retrain.lock", "a+")
    except OSError as error:
        from waflens.data.errors import ConfigError

        raise ConfigError(f"cannot use the model registry at {root}: {error.strerror}") from None
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        return finish("lock_held", EXIT_LOCK_HELD, f"another retrain is running ({root / 'retrain.lock'} is locked)")
    warmup = Warmup.start()  # compiles training's kernels on the other core while we ingest (first run only)
    deferred = DeferredInterrupt()
    try:
        with deferred:
            interrupts.deferred = deferred
            registry = Registry(root)
            report["production_version"] = registry.alias("production")
            return _run(db_path, options, registry, report, stage, finish, warmup, interrupts)
    except KeyboardInterrupt as stop:
        return finish("interrupted", EXIT_INTERRUPTED, _interrupted_message(interrupts.stage, stop, report))
    except WaflensError as error:
        return finish("error", error.exit_code, str(error))
    except Exception as error:
        from waflens.data.errors import storage_fault

        if was_interrupted(error):  # a second Ctrl-C inside a DuckDB query: its transaction was rolled back
            return finish("interrupted", EXIT_INTERRUPTED, _interrupted_message(interrupts.stage, None, report))
        full = storage_fault(error)  # disk full: the operator's to fix, with its own exit code
        if full is not None:
            return finish("error", full.exit_code, str(full))
        finish("error", 1, f"internal error: {type(error).__name__}: {error}")
        raise
    finally:
        warmup.stop()
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()


def _interrupted_message(stage: str, stop: BaseException | None, report: dict) -> str:
    """What an interrupted run kept, for the operator who pressed Ctrl-C (or the cron log that saw SIGINT)."""
    kept = "ingested files are kept"
    if isinstance(stop, InterruptedAfterFile):
        kept = f"files ingested up to {Path(stop.path).name} are kept (the ones after it were not ingested)"
    elif stage == "ingest":
        kept = "ingested files are kept (a file cut off mid-ingest, if any, was rolled back)"
    elif isinstance(stop, InterruptedDerived) and not stop.done:
        kept += " (their sessions are made by the next run)"
    if report.get("candidate_version"):
        version = report["candidate_version"]
        return (f"retrain interrupted during {stage}: {kept}; {version} was registered but not promoted "
                f"(promote it with `waflens models promote {version}`, or run `waflens retrain --force`)")
    return f"retrain interrupted during {stage}: {kept}; no model was registered; run `waflens retrain` again"


def _run(db_path: Path, options: RetrainOptions, registry, report: dict, stage, finish, warmup,
         interrupts: _Interrupts) -> RetrainResult:
    from waflens.data.writes import write
    from waflens.data.settings import get_settings

    from waflens.data.sessionize import pending_requests, update_derived

    files = expand_sources(options.sources)
    if files and db_path.exists():   # a database reading Spark's Parquet takes no traffic: say so before any work
        write(db_path, _refuse_on_spark_output, timeout_s=options.write_timeout_s)
    with stage("ingest", len(files), "files") as current:
        report["ingested"] = _ingest_sources(db_path, options, files, current)
        current.counts.update(files=len(files), **{key: sum(f[key] for f in report["ingested"])
                                                   for key in ("records", "parsed", "quarantined")})
    # requests in no session yet: this run's files, and any left by `ingest --no-sessionize`, Ctrl-C or kill -9
    report["unsessionized"] = write(db_path, pending_requests, timeout_s=options.write_timeout_s) \
        if db_path.exists() else 0
    if report["unsessionized"]:
        with stage("sessionize") as current:
            derived = write(db_path, lambda con: update_derived(con, options.gap_minutes),
                            timeout_s=options.write_timeout_s)
            current.counts.update(request_features=derived.request_features, sessions=derived.sessions_total)
    if not db_path.exists():
        raise InputError(f"no database at {db_path}: ingest traffic first or pass --source FILE")
    settings = write(db_path, get_settings, timeout_s=options.write_timeout_s)
    fingerprint = write(db_path, _fingerprint, timeout_s=options.write_timeout_s)
    report["fingerprint"] = fingerprint
    versions = registry.versions()
    last = versions[-1] if versions else None
    last_fingerprint = (last.training or {}).get("fingerprint") if last else None
    if not options.force and last_fingerprint == fingerprint:
        return finish("nothing_to_do", EXIT_NOTHING_NEW,
                      f"nothing new since {last.version}: no new traffic, analyst labels or allowlist changes")
    if last_fingerprint is None or last_fingerprint.get("data") != fingerprint["data"]:
        with stage("cluster") as current:
            from waflens.clustering.run import ClusterOptions
            from waflens.pipeline.cluster import cluster_window

            size = options.min_cluster_size or int(settings.get("min_cluster_size") or 10)
            run = write(db_path, lambda con: cluster_window(con, ClusterOptions(min_cluster_size=size,
                                                                               seed=options.seed)),
                        timeout_s=options.write_timeout_s)
            report["cluster_run"] = {"id": run.cluster_run_id, "clusters": run.n_clusters,
                                     "emerging": list(run.emerging)}
            current.counts.update(clusters=run.n_clusters, emerging=len(run.emerging))
        if run.n_clusters:
            with stage("summarize", run.n_clusters, "clusters") as current:
                report["summaries"] = _summarize(db_path, run.cluster_run_id, options)
                current.advance(by=report["summaries"]["clusters"])
                current.counts.update(clusters=report["summaries"]["clusters"], **report["summaries"]["statuses"])

    with stage("snapshot") as current:
        snap = snapshot(db_path)
        current.counts.update(sessions=snap.execute("SELECT count(*) FROM sessions").fetchall()[0][0])
    if warmup.running:
        with stage("compile") as current:  # the kernels the child compiles are next: wait rather than compile twice
            warmup.wait()
            current.counts.update(exit_code=warmup.process.returncode)
    try:
        return _train_and_gate(snap, options, registry, report, fingerprint, stage, finish, interrupts)
    finally:
        snap.close()


def _train_and_gate(snap, options, registry, report, fingerprint, stage, finish, interrupts) -> RetrainResult:
    from waflens.scoring.feedback import feedback_coverage, label_snapshot
    from waflens.scoring.gates import failed
    from waflens.scoring.train import TrainingOptions, train_request_model, train_session_model, training_steps

    split = holdout_split(snap, options.holdout_fraction)
    report["holdout_from"] = split.isoformat() if split else None
    staging = registry.root / f".bundle-{os.getpid()}-{time.time_ns()}"
    training = TrainingOptions(until=split, n_estimators=options.trees, seed=options.seed,
                               gap_minutes=options.gap_minutes)
    try:
        with stage("train", training_steps(training), "steps") as current:
            request_manifest = train_request_model(snap, staging / "request", training, current.advance)
            session_manifest = train_session_model(snap, staging / "session", training, current.advance)
            current.counts.update(requests=request_manifest["training"]["requests"],
                                  sessions=session_manifest["training"]["sessions"])
        labels = label_snapshot(snap)
        production = registry.alias("production")
        with stage("gates", len(EVALUATION_STEPS), "steps") as current:
            evaluation = evaluate(snap, staging, registry.path("production") if production else None, split,
                                  options.gates, current.advance)
            coverage, learned = feedback_coverage(snap, split, session_manifest, registry, production,
                                                  options.allow_label_loss)
            evaluation["gates"].append(coverage)
            evaluation["metrics"].update(learned)
            current.counts.update(holdout_sessions=evaluation["metrics"]["holdout_sessions"],
                                  failed=len(failed(evaluation["gates"])))
        report["warnings"] = [g["warning"] for g in evaluation["gates"] if g.get("warning")]
        report.update(gates=evaluation["gates"], shadow=evaluation["shadow"], alert_rate=evaluation["alert_rate"],
                      metrics=evaluation["metrics"])
        interrupts.check()
        interrupts.committing = True  # register → card → promote: finished once begun (a second Ctrl-C aside)
        with stage("register") as current:
            info = registry.register(
                staging, metrics={**{k: v for k, v in evaluation["metrics"].items() if k.endswith("_auc")},
                                  "alert_rate": evaluation["alert_rate"]["candidate"],
                                  "holdout_sessions": evaluation["metrics"]["holdout_sessions"], **learned,
                                  "request": request_manifest["metrics"], "session": session_manifest["metrics"],
                                  "feedback_classes": (session_manifest.get("feedback") or {}).get("classes")},
                training={"until": report["holdout_from"], "requests": request_manifest["training"]["requests"],
                          "sessions": session_manifest["training"]["sessions"], "fingerprint": fingerprint,
                          "trees": options.trees, "seed": options.seed},
                labels=labels, parent=production, gates=evaluation["gates"])
            report["candidate_version"] = info.version
            registry.set_alias("candidate", info.version, actor=options.actor, reason="retrain")
            current.counts.update(version=info.version)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    with stage("drift") as current:
        report["drift"] = _drift(snap, split, evaluation)
        current.counts.update(status=report["drift"].get("status"))
    from waflens.scoring.model_card import model_card

    registry.update_metadata(info.version,
                             card=model_card(registry.get(info.version), request_manifest, session_manifest,
                                             evaluation, report["drift"], labels),
                             extra={"shadow": evaluation["shadow"], "holdout_metrics": evaluation["metrics"],
                                    "drift_status": report["drift"].get("status")})
    blocking = failed(evaluation["gates"])
    if blocking:
        worst = "; ".join(f"{g['name']}: {g['detail']} (limit {g['limit']})" for g in blocking)
        return finish("gate_failed", EXIT_GATE_FAILED, f"{info.version} not promoted, production "
                                                       f"{production or '(none)'} kept — failed {worst}")
    if not options.promote:
        return finish("candidate", EXIT_PROMOTED, f"{info.version} passed every gate; it is the candidate "
                                                  "(promote it with `waflens models promote`)")
    registry.promote(info.version, actor=options.actor, reason="retrain: every gate passed")
    report["production_version"] = info.version
    warned = "".join(f"; warning: {w}" for w in report["warnings"])
    return finish("promoted", EXIT_PROMOTED,
                  f"{info.version} promoted to production (was {production or 'none'}){warned}")


# --- stages ---------------------------------------------------------------------------------------

def expand_sources(patterns: tuple[str, ...]) -> list[Path]:
    patterns = patterns or tuple(p for p in os.environ.get(SOURCES_ENV, "").split(os.pathsep) if p)
    files: list[Path] = []
    for pattern in patterns:
        matched = sorted(glob.glob(os.path.expanduser(pattern)))
        if not matched and not glob.has_magic(pattern):
            raise InputError(f"source {pattern} does not exist: fix --source or ${SOURCES_ENV}")
        files.extend(Path(m) for m in matched if Path(m).is_file())
    return list(dict.fromkeys(files))


def _refuse_on_spark_output(con: duckdb.DuckDBPyConnection) -> None:
    from waflens.pipeline.spark.attach import refuse_traffic_writes

    refuse_traffic_writes(con, "retrain --source")


def _ingest_sources(db_path: Path, options: RetrainOptions, files: list[Path], current: Stage) -> list[dict]:
    """Each file in its own short write (already-ingested files are recognised by hash and skipped)."""
    from waflens.data.writes import write
    from waflens.data.ingest import IngestOptions, ingest_file
    from waflens.data.pseudonymize import Pseudonymizer, load_key

    if not files:
        return []
    pseudonymizer = Pseudonymizer(load_key(db_path))
    done = []
    for path in files:
        summary = write(db_path, lambda con: ingest_file(con, path, IngestOptions(), pseudonymizer),
                        timeout_s=options.write_timeout_s)
        done.append({"path": str(path), "status": summary.status, "records": summary.records,
                     "parsed": summary.parsed if summary.status == "ingested" else 0,
                     "quarantined": summary.quarantined})
        current.advance(path.name)
    return done


def _fingerprint(con: duckdb.DuckDBPyConnection) -> dict:
    """What a model version was trained from: traffic counts and the analysts' labels."""
    from waflens.scoring.feedback import label_snapshot

    requests, last_request, sessions = con.execute(
        "SELECT (SELECT count(*) FROM requests), (SELECT coalesce(max(request_id), 0) FROM requests), "
        "(SELECT count(*) FROM sessions)").fetchall()[0]
    return {"data": {"requests": int(requests), "last_request_id": int(last_request), "sessions": int(sessions)},
            "labels": label_snapshot(con)}


def _summarize(db_path: Path, run_id: int, options: RetrainOptions) -> dict:
    """The LLM stage, outside any long transaction: evidence in a short read, the provider called with no
    connection held, each summary written in its own short transaction (waflens.labeling.summarize.summarize_database).
    Endpoint, key and limits come from the environment or the operator's file, never from the database."""
    from waflens.labeling.llm_config import load_llm_config
    from waflens.labeling.summarize import summarize_database

    config = load_llm_config(db_path, provider=options.provider)
    results = summarize_database(db_path, run_id, config, write_timeout_s=options.write_timeout_s)
    statuses: dict[str, int] = {}
    for result in results:
        statuses[result["status"]] = statuses.get(result["status"], 0) + 1
    return {"provider": config.provider, "clusters": len(results), "statuses": statuses}


def snapshot(db_path: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory copy of the tables training and the gates read; the file is released at once."""
    from waflens.data.db import connect

    source = connect(db_path, read_only=True)
    try:
        # views too: a database made by `waflens spark attach` reads its traffic through views over Parquet
        present = {name for (name,) in source.execute("SELECT table_name FROM duckdb_tables() UNION ALL "
                                                      "SELECT view_name FROM duckdb_views() WHERE NOT internal"
                                                      ).fetchall()}
        frames = {name: source.sql(f"SELECT * FROM {name}").to_arrow_table()
                  for name in SNAPSHOT_TABLES if name in present}
    finally:
        source.close()
    snap = duckdb.connect(":memory:")
    snap.execute("SET TimeZone = 'UTC'")
    for name, frame in frames.items():
        snap.register("frame", frame)
        snap.execute(f"CREATE TABLE {name} AS SELECT * FROM frame")
        snap.unregister("frame")
    ensure_schemas(snap)
    return snap


def _drift(con, split, evaluation) -> dict:
    from waflens.scoring.drift import score_drift, window_drift

    if split is None:
        return {"status": "insufficient_data", "features": [], "counts": {}, "reason": "no timestamps to split on"}
    drift = window_drift(con, "session", (None, split), (split, None)).to_dict()
    ids = evaluation["ids"]
    if len(ids):
        from waflens.data.session_matrix import session_feature_matrix

        _, reference = session_feature_matrix(con, "s.start_ts < $split", {"split": split})
        scorer = evaluation.get("scorer")
        if scorer is not None and len(reference):
            drift["score"] = score_drift(scorer.score_batch(reference), evaluation["candidate_scores"]).to_dict()
    return drift


def _write_report(root: Path, started: datetime, report: dict, options: RetrainOptions) -> None:
    runs = root / "runs"
    try:
        runs.mkdir(parents=True, exist_ok=True)
        path = runs / f"{started:%Y%m%dT%H%M%S%fZ}.json"
        tmp = path.with_suffix(".partial")
        tmp.write_text(json.dumps(report, indent=2, default=str) + "\n")
        os.replace(tmp, path)
        report["report_path"] = str(path)
    except OSError as error:
        print(f"waflens: cannot write the run report to {runs}: {error.strerror}", file=sys.stderr)
    textfile = options.prometheus_textfile or os.environ.get(PROMETHEUS_ENV)
    if textfile:
        from waflens.pipeline.prometheus import write_run_metrics

        try:
            write_run_metrics(textfile, report)
        except (OSError, WaflensError) as error:
            print(f"waflens: cannot write Prometheus metrics to {textfile}: {error}", file=sys.stderr)
