"""`waflens retrain` tells where it is: JSON lines per stage, a bar on a real terminal; and what makes it fast."""

import os
import pty
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from waflens.data.db import connect
from waflens.data.synthetic import generate_traffic
from waflens.scoring.registry import Registry
from waflens.runtime.kernels.profile import endpoint_key, enum_key, param_key, request_params, value_hash
from waflens.scoring.profiles import (ENUM_MAX_VALUES, ENUM_MIN_OBSERVATIONS, deviations, encode_request, fit_profiles,
                              out_of_fold_deviations)
from tests.data.cli_process import json_lines, waflens_here

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("retrain_progress")
    log = tmp / "traffic.log"
    generate_traffic(log, 6_000, seed=11)
    return tmp, log, tmp / "w.duckdb", tmp / "models"


def test_json_lines_one_per_stage_with_counts_and_seconds_then_the_summary(site):
    tmp, log, db, models = site
    code, out, err = waflens_here("--db", str(db), "--json", "retrain", "--source", str(log), "--models", str(models),
                                  "--trees", "20")
    assert code == 0, err
    lines = json_lines(out)
    assert len(lines) == len(out.splitlines())                                  # nothing but JSON on stdout
    report, stages = lines[-1], lines[:-1]
    assert report["status"] == "promoted"
    assert all(s["event"] == "stage" for s in stages)
    assert [s["stage"] for s in stages] == list(report["stages"])             # every stage, in order
    assert {"ingest", "sessionize", "cluster", "train", "gates", "drift"} <= {s["stage"] for s in stages}
    by_name = {s["stage"]: s for s in stages}
    for name, seconds in report["stages"].items():
        assert by_name[name]["seconds"] == pytest.approx(seconds, abs=0.01)
    ingest = by_name["ingest"]["counts"]
    assert ingest["files"] == 1 and ingest["records"] == 6_000 == ingest["parsed"] + ingest["quarantined"]
    training = Registry(models).get("v0001").training
    assert by_name["train"]["counts"] == {"requests": training["requests"], "sessions": training["sessions"]}
    assert by_name["gates"]["counts"]["holdout_sessions"] == report["metrics"]["holdout_sessions"]
    assert by_name["register"]["counts"]["version"] == "v0001"
    # stderr is not a terminal here: one line as each stage starts (what the workbench's job log shows) and ends
    assert "retrain: gates…" in err.splitlines() and "\x1b[" not in err
    assert any(line.startswith("retrain: train done in ") for line in err.splitlines())


def test_on_a_terminal_each_stage_is_a_bar_redrawn_in_place(site):
    tmp, log, db, models = site
    if not models.exists():
        pytest.skip("needs the first test's run")   # run alone, the first test made the models
    master, slave = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "150"}
    process = subprocess.Popen([sys.executable, "-m", "waflens.app.cli", "--db", str(db), "retrain", "--source", str(log),
                                "--models", str(models), "--force", "--trees", "20"], cwd=REPO, env=env,
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    chunks = []

    def read():
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:   # the child closed the terminal
                return
            if not chunk:
                return
            chunks.append(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert process.wait(timeout=300) in (0, 11)
    reader.join(timeout=10)
    os.close(master)
    screen = b"".join(chunks).decode("utf-8", "replace")
    drawn = [part for part in screen.split("\r\x1b[K") if part.startswith("retrain: train ")]
    assert any("/12 steps" in part and "[" in part and "#" in part for part in drawn), screen[-2000:]
    assert any("ETA" in part for part in drawn)                               # the previous run gives ETAs
    assert any("retrain: gates      done in" in part for part in screen.split("\r\x1b[K"))
    assert "retrain: gates…" not in screen                                     # the plain lines are for logs


def _reference_profiles(requests):
    """The profiles as fitted before parsing was shared: one kernel call per request, Python dicts."""
    counts, lengths, seen, values = {}, {}, {}, {}
    for request in requests:
        path_decoded, names, data, offsets, count = request_params(request.path, request.query, request.body)
        endpoint = int(endpoint_key(request.method_code, path_decoded))
        counts[endpoint] = counts.get(endpoint, 0) + 1
        for k in range(count):
            key = int(param_key(endpoint, names[k]))
            a, b = int(offsets[k]), int(offsets[k + 1])
            lengths.setdefault(key, []).append(b - a)
            seen.setdefault(key, np.zeros(256, dtype=bool))[data[a:b]] = True
            values.setdefault(key, set()).add(int(value_hash(data, a, b)))
    params = {key: (np.mean(v), np.std(v), np.max(v), seen[key],
                    len(values[key]) <= ENUM_MAX_VALUES and len(v) >= ENUM_MIN_OBSERVATIONS,
                    {int(enum_key(row, h)) for h in values[key]})
              for row, (key, v) in enumerate(lengths.items())}
    return counts, params


def test_profiles_parsed_once_equal_the_per_request_reference(site):
    tmp, log, db, models = site
    con = connect(db, read_only=True)
    rows = con.execute("SELECT method, path, query, body FROM requests ORDER BY request_id LIMIT 3000").fetchall()
    con.close()
    requests = [encode_request(*row) for row in rows]
    requests += [encode_request("POST", "/login", "next=%2Fhome", f"user=u{i}&pass=%27{i}") for i in range(40)]
    tables = fit_profiles(requests)
    counts, params = _reference_profiles(requests)
    endpoint_slots = {int(k): i for i, k in enumerate(tables.endpoint_keys) if k}
    assert {k: int(tables.endpoint_count[endpoint_slots[k]]) for k in counts} == counts
    assert sorted(int(k) for k in tables.param_keys if k) == sorted(params)
    for slot, key in enumerate(tables.param_keys):
        if not key:
            continue
        row = tables.param_index[slot]
        mean, std, maximum, seen, is_enum, enum_keys = params[int(key)]
        assert tables.length_mean[row] == pytest.approx(mean, abs=1e-9)
        assert tables.length_std[row] == pytest.approx(std, abs=1e-9)
        assert tables.length_max[row] == maximum and bool(tables.is_enum[row]) == is_enum
        assert np.array_equal(tables.seen_bytes[row], seen)
        if is_enum:
            assert enum_keys <= {int(k) for k in tables.enum_keys if k}
    assert sum(p[4] for p in params.values()) > 0                               # enumerations were exercised
    # out of fold: the same deviations as profiles fitted from scratch on each fold's other requests
    oof = out_of_fold_deviations(requests, folds=3, seed=4)
    fold_of = np.random.default_rng(4).integers(0, 3, size=len(requests))
    for fold in range(3):
        held_out = np.flatnonzero(fold_of == fold)
        fitted = fit_profiles(requests[i] for i in np.flatnonzero(fold_of != fold))
        assert np.allclose(oof[held_out], deviations([requests[i] for i in held_out], fitted), rtol=1e-12, atol=1e-12)


def test_the_jit_warmup_starts_only_on_a_cold_cache(tmp_path):
    probe = ("import waflens.scoring.jit_warmup as w, sys; started = w.Warmup.start(); "
             "print(w.cache_is_warm(), started.process is not None); started.stop()")
    env = {**os.environ, "PYTHONPATH": str(REPO), "NUMBA_CACHE_DIR": str(tmp_path / "empty"),
           "WAFLENS_JIT_WARMUP": "1"}                    # regardless of this machine's load
    cold = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
    assert cold.stdout.split() == ["False", "True"], cold.stderr            # cold: a child compiles
    env["WAFLENS_JIT_WARMUP"] = "0"
    off = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
    assert off.stdout.split() == ["False", "False"], off.stderr              # turned off: none


def test_after_a_retrain_the_cache_is_warm_and_no_child_starts(site):
    tmp, log, db, models = site
    if not models.exists():
        pytest.skip("needs the first test's run")
    from waflens.scoring.jit_warmup import Warmup, cache_is_warm

    assert cache_is_warm() and Warmup.start().process is None
