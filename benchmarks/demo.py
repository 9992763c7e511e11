"""Time from `waflens demo` to the workbench answering, per stage, on a fresh directory.

    .venv/bin/python benchmarks/demo.py [--repeat 1] [--requests 60000] [--warm] [--baseline /work/main]
    .venv/bin/python benchmarks/demo.py --profile [--requests 60000]

Each repeat runs `python -m waflens.app.cli demo` in a new temporary directory with an empty
numba cache (what a new user's first run compiles; ``--warm`` reuses the checkout's
cache instead), waits until the workbench answers HTTP on a free port, then stops
it. Stage seconds come from the run report the retrain writes; "to UI" is wall time
from the command to the first HTTP answer. ``--baseline CHECKOUT`` runs another
checkout (e.g. main before a change) the same way in the same run. Also reports
the detection quality of the promoted models on the demo data's held-out window
(ROC AUC against the generator's truth), so a speed-up cannot hide a worse model.
Goal: <= 120 s to the UI on a 2-core machine, after pip.

``--profile`` says where a first run's time goes, in terms a loaded machine does not
distort: one cold ``retrain`` of the demo log in this process (no warm-up child, an
empty numba cache), each stage's wall and CPU seconds, and numba's compile time per
kernel (self time, nested kernels apart, with its number of specializations).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GOAL_SECONDS = 120.0
STAGES = ("generate", "ingest", "sessionize", "cluster", "summarize", "snapshot", "compile", "train", "gates",
          "register", "drift")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def run_demo(checkout: Path, requests: int, warm: bool, timeout_s: float) -> dict:
    """One demo run in a fresh directory; stage seconds, seconds to UI and the work directory."""
    work = Path(tempfile.mkdtemp(prefix="waflens-demo-bench-"))
    port = _free_port()
    # the same traffic in every run (the generator's output depends on the hash seed)
    env = {**os.environ, "PYTHONPATH": str(checkout), "PYTHONUNBUFFERED": "1", "PYTHONHASHSEED": "0"}
    env.pop("WAFLENS_DB", None)
    env.pop("WAFLENS_MODELS", None)
    if not warm:
        env["NUMBA_CACHE_DIR"] = str(work / "numba-cache")   # a new user's empty cache
    python = checkout / ".venv" / "bin" / "python"
    command = [str(python if python.exists() else sys.executable), "-m", "waflens.app.cli", "--db", str(work / "waflens.duckdb"),
               "demo", "--dir", str(work / "demo"), "--requests", str(requests), "--port", str(port)]
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    log = open(work / "demo.stderr", "w")
    process = subprocess.Popen(command, cwd=work, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=log, start_new_session=True)
    to_ui = None
    generated = None
    try:
        while time.perf_counter() - started < timeout_s:
            if generated is None and (work / "demo" / "traffic.log.truth.csv").exists():
                generated = time.perf_counter() - started
            if _answers(port):
                to_ui = time.perf_counter() - started
                break
            if process.poll() is not None:
                break
            time.sleep(0.5)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, 15)   # the demo and the streamlit server it started
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)
                process.wait()
        log.close()
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    reports = sorted((work / "models" / "runs").glob("*.json"))
    report = json.loads(reports[-1].read_text()) if reports else {}
    stages = dict(report.get("stages") or {})
    if generated is not None:
        stages["generate"] = round(generated, 3)   # up to the truth file, written last; includes start-up
    return {"work": work, "to_ui": to_ui, "cpu": cpu, "stages": stages, "retrain": report.get("duration_seconds"),
            "status": report.get("status"), "exit": process.returncode}


def quality(work: Path) -> dict:
    """ROC AUC of the production request and session models on the held-out (latest) window."""
    import numpy as np
    from sklearn.metrics import roc_auc_score

    sys.path.insert(0, str(REPO))
    from waflens.data.db import connect
    from waflens.data.session_matrix import session_feature_matrix
    from waflens.scoring.registry import Registry
    from waflens.runtime.scorer import Scorer, SessionScorer

    registry = Registry(work / "models")
    until = (registry.get("production").training or {}).get("until")
    truth = {}
    for line in (work / "demo" / "traffic.log.truth.csv").read_text().splitlines()[1:]:
        record, campaign = line.split(",", 1)
        truth[int(record)] = campaign != "benign"
    con = connect(work / "waflens.duckdb", read_only=True)
    try:
        rows = con.execute("SELECT record, method, path, query, user_agent, referer, session_id FROM requests "
                           "WHERE ts >= $until ORDER BY request_id", {"until": until}).fetchall()
        ids, X = session_feature_matrix(con, "s.start_ts >= $until", {"until": until})
    finally:
        con.close()
    scorer = Scorer.load(work / "models" / "production" / "request")
    scores = np.array([scorer.score_request(m, p + ("?" + q if q else ""), {"User-Agent": a, "Referer": r}).score
                       for _, m, p, q, a, r, _ in rows])
    y = np.array([truth[record] for record, *_ in rows])
    attack_sessions = {}
    for record, *_, session in rows:
        attack_sessions[session] = attack_sessions.get(session, False) or truth[record]
    session_scores = SessionScorer.load(work / "models" / "production" / "session", warm_up=False).score_batch(X)
    ys = np.array([attack_sessions.get(int(i), False) for i in ids])
    return {"request_auc": round(float(roc_auc_score(y, scores)), 4), "requests": len(y),
            "session_auc": round(float(roc_auc_score(ys, session_scores)), 4), "sessions": len(ys)}


class _StageClock:
    """A retrain progress reporter that keeps each stage's wall and CPU (process) seconds."""

    def __init__(self):
        self.rows: list[tuple[str, float, float]] = []
        self._begun = (0.0, 0.0)

    def begin(self, stage: str, total: int | None = None, unit: str = "") -> None:
        self._begun = (time.perf_counter(), time.process_time())

    def advance(self, done: int, note: str = "") -> None:
        pass

    def end(self, stage: str, seconds: float, counts: dict) -> None:
        wall, cpu = self._begun
        self.rows.append((stage, time.perf_counter() - wall, time.process_time() - cpu))

    def message(self, text: str) -> None:
        print(text, file=sys.stderr)


def profile(requests: int, top: int = 25) -> None:
    """One cold retrain in this process: stage wall/CPU seconds and numba compile time per kernel."""
    import collections

    work = Path(tempfile.mkdtemp(prefix="waflens-demo-profile-"))
    os.environ["NUMBA_CACHE_DIR"] = str(work / "numba-cache")   # before numba is imported: an empty cache
    os.environ["WAFLENS_JIT_WARMUP"] = "0"                     # every kernel compiles here, where it is timed
    sys.path.insert(0, str(REPO))
    from numba.core import event

    from waflens.data.synthetic import generate_traffic
    from waflens.pipeline.retrain import RetrainOptions, retrain

    compiles = event.RecordingListener()
    event.register("numba:compile", compiles)
    generate_traffic(work / "traffic.log", requests, 7, days=3.0, attack_share=0.15)
    clock = _StageClock()
    wall, cpu = time.perf_counter(), time.process_time()
    result = retrain(work / "waflens.duckdb", RetrainOptions(sources=(str(work / "traffic.log"),)), progress=clock)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    own: collections.Counter = collections.Counter()
    count: collections.Counter = collections.Counter()
    stack: list[list] = []   # [kernel, start, time spent compiling the kernels it called]
    total = 0.0
    for stamp, happened in compiles.buffer:
        function = happened.data["dispatcher"].py_func
        if happened.is_start:
            stack.append([f"{function.__module__}.{function.__qualname__}", stamp, 0.0])
            continue
        name, start, nested = stack.pop()
        own[name] += stamp - start - nested
        count[name] += 1
        if stack:
            stack[-1][2] += stamp - start
        else:
            total += stamp - start
    load = os.getloadavg()
    print(f"\ncold retrain of {requests:,} demo requests in one process: {result.status}, {wall:.1f} s wall, "
          f"{cpu:.1f} s CPU; numba compiling {total:.1f} s wall ({total / wall:.0%}); load average {load[0]:.1f} "
          f"on {os.cpu_count()} CPUs\n")
    print(f"{'stage':<12}{'wall s':>10}{'CPU s':>10}")
    for stage, seconds, cpu_seconds in clock.rows:
        print(f"{stage:<12}{seconds:>10.1f}{cpu_seconds:>10.1f}")
    print(f"\n{'compile s':>10}{'specializations':>17}  kernel (self time: kernels it calls are their own rows)")
    for name, seconds in own.most_common(top):
        print(f"{seconds:>10.1f}{count[name]:>17}  {name}")
    print(f"({len(own)} kernels, {sum(count.values())} specializations; work directory {work})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--requests", type=int, default=60_000)
    parser.add_argument("--warm", action="store_true", help="keep the checkout's numba cache (a second run)")
    parser.add_argument("--baseline", type=Path, default=None, help="another checkout to run the same way")
    parser.add_argument("--timeout", type=float, default=1200.0)
    parser.add_argument("--profile", action="store_true",
                        help="instead: one cold retrain in-process, with stage CPU seconds and numba compile times")
    args = parser.parse_args()
    if args.profile:
        profile(args.requests)
        return
    variants = [("this", REPO)] + ([("baseline", args.baseline.resolve())] if args.baseline else [])
    results: dict[str, list[dict]] = {name: [] for name, _ in variants}
    load_before = os.getloadavg()[0]   # other work on the machine stretches wall times, not CPU seconds
    for _ in range(args.repeat):
        for name, checkout in variants:   # interleaved, so load changes hit both alike
            result = run_demo(checkout, args.requests, args.warm, args.timeout)
            try:
                result["quality"] = quality(result["work"])
            except Exception as error:  # the run failed before promoting: the table says so
                result["quality"] = {"error": f"{type(error).__name__}: {error}"}
            results[name].append(result)
            print(f"{name}: to UI {result['to_ui']}, CPU {result['cpu']:.0f} s, status {result['status']}, {result['quality']} "
                  f"({result['work']})", file=sys.stderr)
    load = os.getloadavg()
    print(f"\nwaflens demo, {args.requests:,} requests, {'warm' if args.warm else 'cold'} numba cache, "
          f"median of {args.repeat}; load average {load_before:.1f} before, {load[0]:.1f} after, on "
          f"{os.cpu_count()} CPUs\n")
    header = f"{'stage':<12}" + "".join(f"{name:>12}" for name, _ in variants)
    print(header)
    print("-" * len(header))

    def median(name, pick):
        values = [v for v in (pick(r) for r in results[name]) if v is not None]
        return statistics.median(values) if values else None

    def cell(value, spec=".1f"):
        return f"{'-' if value is None else format(value, spec):>12}"

    for stage in STAGES:
        values = [median(name, lambda r: r["stages"].get(stage)) for name, _ in variants]
        if any(v is not None for v in values):
            print(f"{stage:<12}" + "".join(cell(v) for v in values))
    print(f"{'retrain':<12}" + "".join(cell(median(name, lambda r: r["retrain"])) for name, _ in variants))
    print(f"{'to UI':<12}" + "".join(cell(median(name, lambda r: r["to_ui"])) for name, _ in variants)
          + f"   goal <= {GOAL_SECONDS:.0f} s")
    print(f"{'CPU s':<12}" + "".join(cell(median(name, lambda r: r["cpu"])) for name, _ in variants)
          + "   user+sys of the demo and its children (to UI, and the workbench until stopped)")
    for key in ("request_auc", "session_auc"):
        print(f"{key:<12}" + "".join(cell(median(name, lambda r: r["quality"].get(key)), ".4f")
                                     for name, _ in variants))


if __name__ == "__main__":
    main()
