"""Finding 6: a file read with the wrong format is no longer blocked for good. Ingest exits 7 and says
which format to try when nothing of a file parsed; ingesting it again replaces that attempt; and
`waflens sources forget` removes a source with everything built from it, in one transaction."""

import io
import json

from waflens.clustering.run import ClusterOptions, cluster_sessions
from waflens.data.db import connect
from waflens.data.sessionize import update_derived
from waflens.data.sources import forget_source
from tests.data.cli_process import waflens_here
from tests.data.helpers import at, combined_line, ingest, write_log


def _lines(n: int, clients: int = 20, offset: int = 0) -> list[str]:
    return [combined_line(f"10.0.{(i + offset) % clients}.1", at(7 * i + offset), f"GET /p/{i % 13}?id={i} HTTP/1.1",
                          status=200 if i % 9 else 404) for i in range(n)]


def test_wrong_format_exits_7_with_a_hint_and_the_file_can_be_ingested_again(tmp_path, monkeypatch):
    monkeypatch.setenv("WAFLENS_PSEUDONYM_KEY", "test-key-0123456789abcdef")
    log = write_log(tmp_path / "access.log", _lines(300))
    db = str(tmp_path / "w.duckdb")
    code, out, err = waflens_here("--db", db, "--json", "ingest", "--format", "json", str(log))
    assert code == 7, err  # main: 0, "300 quarantined"
    assert "none of its 300 records parsed as json" in err and "try --format combined" in err
    assert json.loads(out)["files"][0]["status"] == "nothing parsed"
    code, out, err = waflens_here("--db", db, "--json", "ingest", str(log))
    assert code == 0, err  # main: "already ingested, nothing added"
    file = json.loads(out)["files"][0]
    assert (file["status"], file["parsed"], file["quarantined"]) == ("re-ingested", 300, 0)
    assert "earlier ingest (source 1, as json) parsed nothing and was replaced" in err
    con = connect(db, read_only=True)
    try:  # the first attempt left nothing behind: no ingest record, no quarantine rows
        assert con.execute("SELECT count(*), min(parsed) FROM sources").fetchall() == [(1, 300)]
        assert con.execute("SELECT count(*) FROM quarantine").fetchall() == [(0,)]
    finally:
        con.close()
    code, out, _ = waflens_here("--db", db, "--json", "ingest", str(log))
    assert json.loads(out)["files"][0]["status"] == "already ingested"


def test_a_log_format_that_matches_nothing_exits_7(tmp_path, monkeypatch):
    monkeypatch.setenv("WAFLENS_PSEUDONYM_KEY", "test-key-0123456789abcdef")
    log = write_log(tmp_path / "access.log", _lines(50))
    code, _, err = waflens_here("--db", str(tmp_path / "w.duckdb"), "ingest", "--no-sessionize", "--log-format",
                                '%h %t "%r" %>s %D %{X-Id}i', str(log))
    assert code == 7, err
    assert "--log-format matched no line" in err


def test_forget_removes_a_source_and_what_was_built_from_it_consistently(tmp_path):
    # two files of the same clients, interleaved in time: sessions mix requests of both
    first = write_log(tmp_path / "first.log", _lines(600, offset=0) + ["not a log line"])
    second = write_log(tmp_path / "second.log", _lines(600, offset=3))
    con = connect(tmp_path / "w.duckdb")
    try:
        kept_source = ingest(con, second).source_id
        gone = ingest(con, first).source_id
        update_derived(con)
        cluster_sessions(con, ClusterOptions(select="all", min_cluster_size=3))
        mixed = con.execute("""SELECT count(*) FROM (SELECT session_id FROM requests GROUP BY session_id
                               HAVING count(DISTINCT source_id) = 2)""").fetchall()[0][0]
        assert mixed > 0
        before_max = con.execute("SELECT max(request_id) FROM requests").fetchall()[0][0]
        summary = forget_source(con, gone)
        assert (summary.requests, summary.quarantined) == (600, 1)
        assert summary.sessions >= mixed and summary.cluster_memberships > 0 and summary.unsessionized > 0
        assert con.execute("SELECT count(*) FROM requests WHERE source_id = $s", {"s": gone}).fetchall() == [(0,)]
        assert con.execute("SELECT count(*) FROM quarantine").fetchall() == [(0,)]
        assert con.execute("SELECT list(source_id) FROM sources").fetchall() == [([kept_source],)]
        # the other file's requests that lost their session are pending, and the next sessionize takes them
        assert con.execute("SELECT count(*) FROM requests WHERE session_id IS NULL").fetchall() == [
            (summary.unsessionized,)]
        update_derived(con)
        assert con.execute("SELECT count(*) FROM requests WHERE session_id IS NULL").fetchall() == [(0,)]
        assert con.execute("SELECT sum(n_requests) FROM sessions").fetchall() == [(600,)]
        assert con.execute("SELECT count(*) FROM request_features").fetchall() == [(600,)]
        assert con.execute("""SELECT count(*) FROM session_features f FULL JOIN sessions s USING (session_id)
                              WHERE f.session_id IS NULL OR s.session_id IS NULL""").fetchall() == [(0,)]
        assert con.execute("""SELECT count(*) FROM session_clusters
                              WHERE session_id NOT IN (SELECT session_id FROM sessions)""").fetchall() == [(0,)]
        # ids are never reused: the next file's requests come after every id ever given
        again = ingest(con, first)
        assert again.status == "ingested"
        assert con.execute("SELECT min(request_id) FROM requests WHERE source_id = $s",
                           {"s": again.source_id}).fetchall()[0][0] > before_max
        assert again.source_id > gone
    finally:
        con.close()


def test_sources_cli_lists_and_forgets_only_with_confirmation(tmp_path, monkeypatch):
    monkeypatch.setenv("WAFLENS_PSEUDONYM_KEY", "test-key-0123456789abcdef")
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # nobody answers the prompt
    log = write_log(tmp_path / "access.log", _lines(40))
    db = str(tmp_path / "w.duckdb")
    assert waflens_here("--db", db, "ingest", str(log))[0] == 0
    _, out, _ = waflens_here("--db", db, "--json", "sources", "list")
    assert [(s["source_id"], s["parsed"]) for s in json.loads(out)["sources"]] == [(1, 40)]
    code, _, err = waflens_here("--db", db, "sources", "forget", "access.log")  # no --yes
    assert code == 130 and "not confirmed: nothing was removed" in err
    code, _, err = waflens_here("--db", db, "sources", "forget", "99", "--yes")
    assert code == 3 and "no ingested source matches '99'" in err
    code, out, err = waflens_here("--db", db, "--json", "sources", "forget", "access.log", "--yes")
    assert code == 0, err
    assert json.loads(out)["requests"] == 40
    assert json.loads(waflens_here("--db", db, "--json", "status")[1])["requests"] == 0
    assert json.loads(waflens_here("--db", db, "--json", "ingest", str(log))[1])["files"][0]["status"] == "ingested"
