"""The Label queue through AppTest: decisions land in DuckDB (who, when, note), the queue moves on,
the allowlist is edited, and a busy database keeps what the analyst typed."""

from __future__ import annotations

import re
import subprocess
import sys

import duckdb
import pytest
from streamlit.testing.v1 import AppTest

from waflens.data.db import connect
from waflens.labeling.labels import record_label
from tests.app.conftest import WORKBENCH, page
from tests.app.test_pages_render import rendered_text


def open_queue() -> AppTest:
    app = AppTest.from_file(WORKBENCH, default_timeout=60).run()
    app.switch_page(page("label_queue")).run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def events(db) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute("""SELECT cluster_id, source, verdict, family, analyst, note FROM label_events
                              WHERE source <> 'suggested' ORDER BY label_event_id""").fetchall()
    finally:
        con.close()


def queue(app: AppTest):
    return app.selectbox(key="queue_cluster")


def queued(app: AppTest) -> list[int]:
    """The cluster ids the queue offers (options are shown as "cluster N — ...")."""
    return [int(option.split()[1]) for option in queue(app).options]


def plain(markdown: str) -> str:
    """Escaped Markdown back to the characters it shows."""
    return re.sub(r"\\(.)", r"\1", markdown)


def button(app: AppTest, label: str):
    return next(b for b in app.button if b.label == label)


def test_confirm_records_the_label_with_analyst_and_moves_to_the_next_cluster(workbench):
    app = open_queue()
    first = queue(app).value
    waiting = len(queue(app).options)
    assert waiting >= 2
    app.text_area(key=f"note_1_{first}").input("seen in the WAF logs too")
    button(app, "Confirm").click().run()
    assert not app.exception
    recorded = events(workbench)
    assert len(recorded) == 1
    cluster, source, verdict, family, analyst, note = recorded[0]
    assert (cluster, source, analyst, note) == (first, "confirmed", "test-analyst", "seen in the WAF logs too")
    assert f"Cluster {first} confirmed" in app.success[0].value
    assert queue(app).value != first                      # moved on
    assert first not in queued(app) and len(queued(app)) == waiting - 1   # the confirmed one left the queue


def test_edit_and_reject_are_recorded_as_such(workbench):
    app = open_queue()
    first = queue(app).value
    app.selectbox(key=f"family_1_{first}").set_value("other")
    app.selectbox(key=f"verdict_1_{first}").set_value("suspicious")
    button(app, "Save edit").click().run()
    second = queue(app).value
    button(app, "Reject").click().run()   # a rejection needs a note
    assert "why you reject" in app.warning[0].value
    app.text_area(key=f"note_1_{second}").input("normal partner traffic")
    button(app, "Reject").click().run()
    assert [(c, s) for c, s, *_ in events(workbench)] == [(first, "edited"), (second, "rejected")]
    assert events(workbench)[0][2:4] == ("suspicious", "other")


def test_analyst_name_from_the_sidebar_is_recorded(workbench):
    app = AppTest.from_file(WORKBENCH, default_timeout=60).run()
    assert app.text_input(key="analyst").value == "test-analyst"   # $WAFLENS_ANALYST
    app.text_input(key="analyst").input("alice").run()
    app.switch_page(page("label_queue")).run()
    button(app, "Confirm").click().run()
    assert events(workbench)[0][4] == "alice"


def test_reviewed_clusters_can_be_shown_and_changed_again(workbench):
    app = open_queue()
    first = queue(app).value
    button(app, "Confirm").click().run()
    assert first not in queued(app)
    app.toggle(key="queue_show_all").set_value(True).run()
    assert first in queued(app)
    queue(app).set_value(first).run()
    assert "confirmed by test-analyst" in plain(" ".join(c.value for c in app.caption))


def test_evidence_is_highlighted_and_escaped(workbench):
    app = open_queue()
    evidence = [m.value for m in app.markdown if ":orange-background[" in m.value]
    assert evidence, "the indicators are highlighted in the evidence"
    for line in evidence[0].split("  \n"):
        assert rendered_text(re.sub(r":orange-background\[(.*?)(?<!\\)\]", r"\1", line))  # text, no markup


def test_carried_over_suggestion_is_marked(workbench):
    con = connect(workbench)
    try:
        cluster = con.execute("SELECT min(cluster_id) FROM cluster_profiles").fetchall()[0][0]
        record_label(con, 1, cluster, family="sqli", verdict="malicious", source="suggested",
                     analyst="carried-over:bob", note="carried over from cluster 3 of run 0")
    finally:
        con.close()
    app = open_queue()
    queue(app).set_value(cluster).run()
    assert any("Carried over: bob" in i.value for i in app.info)


def test_allowlist_add_and_revoke(workbench):
    app = open_queue()
    app.selectbox(key="allow_kind").set_value("user_agent")
    app.text_input(key="allow_pattern").input("^UptimeRobot/")
    app.text_input(key="allow_reason").input("our uptime monitor")
    next(b for b in app.button if b.label == "Add rule").click().run()
    assert not app.exception
    con = duckdb.connect(str(workbench), read_only=True)
    rule = con.execute("SELECT rule_id, kind, pattern, author FROM allowlist").fetchall()
    con.close()
    assert [r[1:] for r in rule] == [("user_agent", "^UptimeRobot/", "test-analyst")]
    app.selectbox(key="allow_revoke_id").set_value(rule[0][0])
    next(b for b in app.button if b.label == "Revoke").click().run()
    con = duckdb.connect(str(workbench), read_only=True)
    assert con.execute("SELECT revoked_by FROM allowlist").fetchall() == [("test-analyst",)]
    con.close()


def test_invalid_allowlist_rule_is_a_message(workbench):
    app = open_queue()
    app.text_input(key="allow_pattern").input("abc")
    next(b for b in app.button if b.label == "Add rule").click().run()   # no reason
    assert not app.exception
    assert "needs a reason" in app.error[0].value


class LockHolder:
    """Another process holding DuckDB's write lock (as a cron retrain would) until released."""

    def __init__(self, db):
        self.process = subprocess.Popen([sys.executable, "-c", f"""
import sys, duckdb
con = duckdb.connect({str(db)!r})
print("locked", flush=True)
sys.stdin.readline()
con.close()
"""], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout.readline().strip() == "locked"

    def release(self) -> None:
        if self.process.poll() is None:
            self.process.communicate("\n", timeout=30)


@pytest.fixture()
def hold_lock(workbench, monkeypatch):
    """Call it to take the lock; the app's waits are cut to a second so the test stays quick."""
    monkeypatch.setenv("WAFLENS_APP_WRITE_TIMEOUT", "1")
    monkeypatch.setenv("WAFLENS_APP_READ_TIMEOUT", "1")
    holders = []
    yield lambda: holders.append(LockHolder(workbench)) or holders[-1]
    for holder in holders:
        holder.release()


def test_busy_database_keeps_the_note_and_saves_on_retry(workbench, hold_lock):
    app = open_queue()
    first = queue(app).value
    lock = hold_lock()
    app.text_area(key=f"note_1_{first}").input("typed during a retrain")
    button(app, "Confirm").click().run()
    assert not app.exception
    assert any("database is busy" in w.value for w in app.warning)
    assert app.text_area(key=f"note_1_{first}").value == "typed during a retrain"
    lock.release()
    button(app, "Confirm").click().run()
    assert [(e[0], e[-1]) for e in events(workbench)] == [(first, "typed during a retrain")]


def test_page_opened_while_busy_says_so_and_recovers(workbench, hold_lock):
    lock = hold_lock()
    app = open_queue()
    assert any("database is busy" in w.value and "work again in a moment" in w.value for w in app.warning)
    assert [b.label for b in app.button] == ["Retry"]
    lock.release()
    app.button(key="_busy_retry").click().run()
    assert not app.warning and queue(app).value is not None


def _members(con, run: int) -> dict[int, set[int]]:
    """Each cluster's member sessions (membership probability >= 0.5), straight from the clustering table."""
    found: dict[int, set[int]] = {}
    for cluster, session in con.execute("SELECT cluster_id, session_id FROM session_clusters WHERE cluster_run_id = "
                                        "$r AND cluster_id >= 0 AND probability >= 0.5", {"r": run}).fetchall():
        found.setdefault(cluster, set()).add(session)
    return found


def test_a_new_cluster_run_queues_only_clusters_with_undecided_sessions(workbench):
    """Decisions on run 1 stay with their sessions: run 2 (after new traffic) does not reset the queue."""
    from datetime import datetime, timezone

    from waflens.clustering.run import ClusterOptions, cluster_sessions
    from waflens.data.sessionize import update_derived
    from waflens.data.synthetic import generate_traffic
    from waflens.labeling.summarize import summarize_run
    from tests.data.helpers import ingest

    later = workbench.parent / "later.log"
    generate_traffic(later, 600, seed=9, start=datetime(2026, 11, 4, tzinfo=timezone.utc), days=0.25,
                     attack_share=0.05)
    con = connect(workbench)
    try:
        first = _members(con, 1)
        undecided = sorted(first, key=lambda c: len(first[c]))[:2]     # the analyst leaves two clusters open
        for cluster in first:
            if cluster not in undecided:
                family, verdict = con.execute("SELECT family, verdict FROM current_labels WHERE cluster_run_id = 1 "
                                              "AND cluster_id = $c", {"c": cluster}).fetchall()[0]
                record_label(con, 1, cluster, family=family, verdict=verdict, analyst="test-analyst")
        decided = {s for c in first if c not in undecided for s in first[c]}
        ingest(con, later)
        update_derived(con)
        assert cluster_sessions(con, ClusterOptions(min_cluster_size=8)).cluster_run_id == 2
        summarize_run(con, 2, "offline")
        second = _members(con, 2)
    finally:
        con.close()
    waiting = {c for c, sessions in second.items() if sessions - decided}
    reviewed = set(second) - waiting
    assert waiting and reviewed, "the new run has clusters of both kinds"
    app = open_queue()
    assert set(queued(app)) == waiting
    assert app.get("progress")[0].proto.text.startswith(f"Cluster run 2: {len(reviewed)} of {len(second)} clusters "
                                                        "reviewed")
    partly = sorted(c for c in waiting if second[c] & decided)
    if partly:      # some of its sessions were decided: their label is proposed, and the page says how many
        queue(app).set_value(partly[0]).run()
        assert any(f"{len(second[partly[0]] & decided)} of its {len(second[partly[0]])} sessions already carry"
                   in i.value for i in app.info)
        assert any("Carried over: test-analyst" in plain(i.value) for i in app.info)
    app.toggle(key="queue_show_all").set_value(True).run()
    done = min(reviewed)
    queue(app).set_value(done).run()
    assert not app.exception, [e.value for e in app.exception]
    assert any("Decided before" in i.value and "of run 1" in i.value for i in app.info)
    assert "by test-analyst on cluster" in plain(" ".join(c.value for c in app.caption))
