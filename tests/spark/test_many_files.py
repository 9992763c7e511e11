"""`waflens spark ingest` of many files and of bad ones, against `waflens ingest` of the same files.

A hundred and fifty small logs (names with spaces, ``%``, unicode and glob characters; some gzipped) are read in one
Spark scan and give the records, quarantine, sources and request ids DuckDB ingest gives; a file that cannot
be ingested (missing, a directory, empty, not gzip, corrupt past its head, of no known format, deleted after
it was checked) is skipped and reported, the others ingested, as DuckDB ingest does, with the same exit code.
"""

from __future__ import annotations

import gzip
import random
from pathlib import Path

import duckdb
import pytest

from tests.data.cli_process import KEY, json_summary, waflens, waflens_here

MANY = 150     # files in the one-scan plan test
PARITY = 50    # of them, ingested by both engines and compared (every kind of name, two .gz)
NAMES = ("plain", "with space", "per%41cent", "ünïcødé", "glob[1]", "star*", "brace{a,b}")


def _log_lines(rng: random.Random, n: int) -> list[bytes]:
    lines = []
    for i in range(n):
        ip = f"10.{rng.randrange(4)}.{rng.randrange(256)}.{rng.randrange(256)}"
        when = f"{rng.randrange(1, 28):02d}/Nov/2026:{rng.randrange(24):02d}:{rng.randrange(60):02d}:00 +0000"
        path = rng.choice(["/", "/login", "/a?id=1%27%20or%201=1", "/search?q=x"])
        if i and i < n - 1 and rng.random() < 0.05:   # a bad line inside, never the last (request ids: see ingest)
            lines.append(b"garbage " + ip.encode())
        else:
            lines.append(f'{ip} - - [{when}] "GET {path} HTTP/1.1" 200 {rng.randrange(9999)} "-" "agent/{i % 3}"'
                         .encode())
    return lines


@pytest.fixture(scope="module")
def many_files(tmp_path_factory) -> list[Path]:
    home = tmp_path_factory.mktemp("many")
    rng = random.Random(20)
    files = []
    for i in range(MANY):
        folder = home / ("sub dir" if i % 2 else "logs")
        folder.mkdir(exist_ok=True)
        content = b"\n".join(_log_lines(rng, rng.randrange(1, 12))) + b"\n"
        if i % 25 == 0:
            path = folder / f"{NAMES[i % len(NAMES)]}-{i}.log.gz"
            path.write_bytes(gzip.compress(content))
        else:
            path = folder / f"{NAMES[i % len(NAMES)]}-{i}.log"
            path.write_bytes(content)
        files.append(path)
    return files


@pytest.fixture(scope="module")
def key_env():
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WAFLENS_PSEUDONYM_KEY", KEY)
        yield


def _duckdb_ingest(db: Path, files: list, *options: str) -> tuple[int, dict, str]:
    code, out, err = waflens_here("--db", str(db), "--json", "ingest", "--no-sessionize", *options, *map(str, files))
    return code, json_summary(out), err


def _duckdb_rows(db: Path, files: list) -> tuple[dict, dict, set]:
    """requests and quarantine keyed by (file as given, record), and the sources (file, records, parsed, quarantined)."""
    by_path = {str(Path(p).resolve()): str(p) for p in files}
    con = duckdb.connect(str(db), read_only=True)
    try:
        con.create_function("given", lambda p: by_path[p], ["VARCHAR"], "VARCHAR")
        requests = con.sql("SELECT given(s.path) AS file, r.record, r.request_id, r.ts, r.client_ip, r.path, "
                           "r.query, r.bytes FROM requests r JOIN sources s USING (source_id)").fetchall()
        quarantine = con.sql("SELECT given(s.path) AS file, q.record, q.raw, q.reason FROM quarantine q "
                             "JOIN sources s USING (source_id)").fetchall()
        sources = set(con.sql("SELECT given(path), records, parsed, quarantined FROM sources").fetchall())
    finally:
        con.close()
    return ({(r[0], r[1]): r[2:] for r in requests}, {(q[0], q[1]): q[2:] for q in quarantine}, sources)


def _spark_rows(spark, out: Path) -> tuple[dict, dict, list[dict]]:
    requests = spark.read.parquet(str(out / "requests")).select(
        "file", "record", "request_id", "ts", "client_ip", "path", "query", "bytes").collect()
    quarantine = spark.read.parquet(str(out / "quarantine")).collect()
    sources = [row.asDict() for row in spark.read.parquet(str(out / "sources")).collect()]
    return ({(r[0], r[1]): tuple(r[2:]) for r in requests},
            {(q["file"], q["record"]): (q["raw"], q["reason"]) for q in quarantine}, sources)


def test_many_files_in_one_scan_equal_duckdb_ingest(spark, many_files, tmp_path, key_env):
    from waflens.data.ingest import IngestOptions
    from waflens.pipeline.spark.ingest import ingest

    files = many_files[:PARITY]   # every kind of name, .gz included; DuckDB ingest takes ~60 ms a file
    # in this process (the CLI's own paths are tested below): a `waflens spark` process starts a JVM of its own
    result = ingest(spark, list(map(str, files)), str(tmp_path / "out"), IngestOptions(), KEY.encode())
    result.release()
    assert len(result.files) == PARITY and not result.failures
    duck_code, _, duck_err = _duckdb_ingest(tmp_path / "w.duckdb", files)
    assert duck_code == 0, duck_err
    requests, quarantine, sources = _duckdb_rows(tmp_path / "w.duckdb", files)
    spark_requests, spark_quarantine, spark_sources = _spark_rows(spark, tmp_path / "out")
    assert len(requests) > 200 and len(quarantine) > 5
    assert spark_requests == requests          # request_id too: no file ends in a quarantined record
    assert spark_quarantine == quarantine
    assert {(s["file"], s["records"], s["parsed"], s["quarantined"]) for s in spark_sources} == sources
    assert [s["file"] for s in spark_sources] == list(map(str, files))


def test_the_plan_holds_one_scan_whatever_the_number_of_files(spark, many_files):
    from waflens.data.ingest import IngestOptions
    from waflens.pipeline.spark.reading import read_records, resolve_inputs

    inputs, failures = resolve_inputs(spark, list(map(str, many_files)), IngestOptions())
    assert not failures and len(inputs) == MANY
    plan = read_records(spark, inputs)._jdf.queryExecution().executedPlan().toString()
    assert plan.count("FileScan") == 1, plan[:2000]
    blocks = read_records(spark, inputs).groupBy("file_id").count().collect()
    assert len(blocks) == MANY and all(row["file_id"] is not None for row in blocks)


def test_the_same_file_under_two_spellings_is_refused(spark, many_files, tmp_path):
    first = many_files[0]
    other = first.parent / ".." / first.parent.name / first.name
    code, _, err = waflens_here("spark", "ingest", str(first), str(other), "--out", str(tmp_path / "out"))
    assert code == 3 and "are the same file" in err and str(other) in err
    assert not (tmp_path / "out").exists()


def _corrupt_past_its_head(packed: bytes, at: float = 0.5) -> bytes:
    """A valid gzip head (so the 64 KB sniffed decompress) and a corrupt body from ``at`` of its length on:
    only the executors find out."""
    start = int(len(packed) * at)
    return packed[:start] + bytes(b ^ 0x5A for b in packed[start:start + 64]) + packed[start + 64:]


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, many_files) -> dict[str, Path]:
    """Two good logs around every kind of file that cannot be ingested."""
    home = tmp_path_factory.mktemp("bad")
    content = b"\n".join(_log_lines(random.Random(7), 3000)) + b"\n"
    packed = gzip.compress(content)
    files = {"good": many_files[1], "missing": home / "missing.log", "directory": home / "a directory",
             "empty": home / "empty.log", "blank": home / "blank.log", "not gzip": home / "plain.log.gz",
             "corrupt": home / "corrupt.log.gz", "unknown": home / "unknown.txt", "good too": many_files[2]}
    files["directory"].mkdir()
    files["empty"].write_bytes(b"")
    files["blank"].write_bytes(b" \n\n\t\n")
    files["not gzip"].write_bytes(content[:500])
    files["corrupt"].write_bytes(_corrupt_past_its_head(packed))
    files["unknown"].write_bytes(b"\x00\x01 no log format at all\n")
    return files


def test_bad_files_are_skipped_and_reported_like_duckdb_ingest(spark, bad_files, tmp_path, key_env):
    # not "not gzip": DuckDB goes by the magic bytes and reads plain text under a .gz name (see reading.py)
    paths = [str(p) for name, p in bad_files.items() if name != "not gzip"]
    code, out, err = waflens_here("--json", "spark", "ingest", *paths, "--out", str(tmp_path / "out"))
    duck_code, duck_summary, duck_err = _duckdb_ingest(tmp_path / "w.duckdb", paths)
    assert code == duck_code == 3, (err[-3000:], duck_err)
    bad = [str(p) for name, p in bad_files.items() if not name.startswith("good") and name != "not gzip"]
    messages = json_summary(out)["failed"]
    assert [m.split(":")[0].split(" is ")[0] for m in messages] == bad
    assert len(duck_summary["failed"]) == len(bad)
    assert "Traceback" not in err and "\tat org.apache" not in err
    for message in messages:
        assert f"waflens: {message}" in err
    corrupt = next(m for m in messages if m.startswith(str(bad_files["corrupt"])))
    assert "gzip -t" in corrupt and "skipped" in corrupt

    requests, quarantine, sources = _duckdb_rows(tmp_path / "w.duckdb", paths)
    spark_requests, spark_quarantine, spark_sources = _spark_rows(spark, tmp_path / "out")
    assert spark_requests == requests and spark_quarantine == quarantine and requests
    assert [s["file"] for s in spark_sources] == paths
    ingested = [s for s in spark_sources if s["status"] != "failed"]
    assert {(s["file"], s["records"], s["parsed"], s["quarantined"]) for s in ingested} == sources
    assert [s["file"] for s in ingested] == [str(bad_files["good"]), str(bad_files["good too"])]
    # request ids count the records of the ingested files before: the failed ones count none
    assert ingested[1]["first_request_id"] == ingested[0]["records"] + 1
    for s in spark_sources:
        if s["status"] == "failed":
            assert (s["records"], s["first_request_id"]) == (0, None) and s["hint"] in messages


def test_with_the_format_given_nothing_is_sniffed_and_bad_files_still_fail(spark, bad_files, tmp_path, key_env):
    """No head is read on the driver then: a bad gzip and a blank file are found by the executors' scan."""
    names = ("good", "missing", "empty", "blank", "not gzip", "corrupt", "good too")
    paths = [str(bad_files[name]) for name in names]
    code, out, err = waflens_here("--json", "spark", "ingest", "--format", "combined", *paths,
                                  "--out", str(tmp_path / "out"))
    assert code == 3, err[-3000:]
    failed = [m.split(":")[0].split(" is ")[0] for m in json_summary(out)["failed"]]
    assert failed == paths[1:-1]
    files = [s.asDict() for s in spark.read.parquet(str(tmp_path / "out" / "sources")).collect()]
    assert [(s["file"], s["status"]) for s in files if s["status"] != "failed"] == \
        [(paths[0], "ingested"), (paths[-1], "ingested")]
    assert "not a gzip file" in json_summary(out)["failed"][3]


def test_a_file_deleted_after_it_was_checked_is_skipped(spark, many_files, tmp_path):
    """Real files, checked on the driver, one deleted before the executors read it."""
    from waflens.data.ingest import IngestOptions
    from waflens.pipeline.spark.ingest import scan_inputs
    from waflens.pipeline.spark.reading import resolve_inputs

    doomed = tmp_path / "doomed [1].log"
    doomed.write_bytes(many_files[3].read_bytes())
    paths = [str(many_files[3]), str(doomed), str(many_files[4])]
    inputs, failures = resolve_inputs(spark, paths, IngestOptions())
    assert not failures
    doomed.unlink()
    kept, failures, parsed, counts = scan_inputs(spark, inputs, IngestOptions(), KEY.encode(), False)
    try:
        assert [item.path for item in kept] == [paths[0], paths[2]]
        assert [f.path for f in failures] == [paths[1]]
        assert "no such file" in str(failures[0].error) and failures[0].error.exit_code == 3
        assert {row["file_id"] for row in counts} == {0, 2}
    finally:
        parsed.unpersist()


def test_when_every_file_fails_nothing_is_written(spark, bad_files, tmp_path):
    paths = [str(bad_files[name]) for name in ("missing", "empty", "unknown")]
    code, _, err = waflens_here("spark", "ingest", *paths, "--out", str(tmp_path / "out"))
    assert code == 3
    assert err.strip().splitlines()[-1] == "waflens: error: none of the 3 files could be ingested, nothing was written"
    for path in paths:
        assert path in err
    assert not (tmp_path / "out").exists()
    code, _, err = waflens_here("spark", "ingest", paths[0], "--out", str(tmp_path / "out"))
    assert code == 3 and len(err.strip().splitlines()) == 1 and "nothing was written" in err


def test_a_pattern_stands_for_the_files_it_matches(spark, many_files, tmp_path):
    """What a shell does for local files, for paths no shell expands (s3a://bucket/day/*.gz): the matches in name
    order; a file whose own name holds glob characters is itself; a pattern that matches nothing fails alone."""
    from waflens.data.ingest import IngestOptions
    from waflens.pipeline.spark.reading import expand_patterns, resolve_inputs

    folder = many_files[0].parent
    pattern = str(folder / "plain-*.log")
    expected = sorted(str(p) for p in folder.glob("plain-*.log"))
    assert len(expected) > 5
    literal = next(p for p in many_files if "glob[1]" in p.name)
    missing = str(tmp_path / "nothing-*.log")
    paths, unmatched = expand_patterns(spark, [pattern, str(literal), missing])
    assert paths == [*expected, str(literal), missing] and unmatched == {missing}
    inputs, failures = resolve_inputs(spark, [pattern, missing], IngestOptions())
    assert [item.path for item in inputs] == expected
    assert [(f.path, str(f.error)) for f in failures] == [(missing, f"{missing} matches no file")]
    code, out, err = waflens_here("--json", "spark", "ingest", pattern, "--out", str(tmp_path / "out"))
    assert code == 0, err[-3000:]
    assert [f["file"] for f in json_summary(out)["files"]] == expected


def test_a_file_failing_on_the_executors_leaves_one_line_on_the_stderr_of_the_process(spark, tmp_path):
    """In a process of its own, as from cron (whose mail holds the stderr): Spark cancels the tasks still running when the corrupt file's task
    fails, and their Python workers, cut off mid-write, must not print pyspark's ``BrokenPipeError`` traceback
    (Spark copies a worker's stderr to the driver's, which a run inside pytest's process does not capture)."""
    lines = [line for line in _log_lines(random.Random(11), 60_000) if not line.startswith(b"garbage")]
    good = tmp_path / "good.log"   # big enough to be still parsing when the corrupt file's task fails
    good.write_bytes(b"\n".join(lines) + b"\n")
    corrupt = tmp_path / "corrupt.log.gz"
    # corrupt late in many records: both tasks' workers are streaming rows when the job is cancelled
    corrupt.write_bytes(_corrupt_past_its_head(gzip.compress(b"\n".join(_log_lines(random.Random(7), 30_000)) + b"\n"),
                                               at=0.8))
    out = tmp_path / "out"
    run = waflens("spark", "ingest", str(good), str(corrupt), "--out", str(out), timeout=300)
    assert run.returncode == 3, run.stderr[-3000:]
    reports = [line for line in run.stderr.splitlines() if str(corrupt) in line]
    assert len(reports) == 1 and reports[0].startswith(f"waflens: {corrupt}: cannot be read"), run.stderr[-3000:]
    others = "\n".join(line for line in run.stderr.splitlines() if line != reports[0])
    # nor Spark's startup notices (session.local_java_options, log4j2.properties, SPARK_LOCAL_IP)
    for noise in ("Traceback", "BrokenPipeError", "Broken pipe", "Exception", "\tat ", " ERROR ", "Lost task",
                  "log4j profile", "NativeCodeLoader", "resolves to a loopback address", "Truncated the string"):
        assert noise not in others, run.stderr[-3000:]
    sources = {row["file"]: row for row in spark.read.parquet(str(out / "sources")).collect()}
    assert (sources[str(good)]["status"], sources[str(good)]["parsed"]) == ("ingested", len(lines))
    assert sources[str(corrupt)]["status"] == "failed"
    assert spark.read.parquet(str(out / "requests")).count() == len(lines)
