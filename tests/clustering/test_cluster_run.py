"""Clustering sessions: real scanners stay apart, generated campaigns are recovered, edge cases hold."""

import json
from collections import Counter
from datetime import datetime, timedelta

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from waflens.clustering.run import ClusterOptions, cluster_sessions
from waflens.clustering.schema import ensure_cluster_schema
from waflens.data.sessionize import update_derived
from waflens.data.synthetic_campaigns import SPECS
from tests.data.helpers import at, campaign_of_sessions, combined_line, fresh_db, generated_db, ingest, write_log


def _clusters(con, run_id):
    return dict(con.execute("SELECT session_id, cluster_id FROM session_clusters WHERE cluster_run_id = $r",
                            {"r": run_id}).fetchall())


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    return generated_db(tmp_path_factory.mktemp("gen"), 40_000, seed=7)


def test_generated_campaigns_are_recovered(generated):
    con, log, _ = generated
    run = cluster_sessions(con, ClusterOptions(min_cluster_size=10))
    campaign = campaign_of_sessions(con, log)
    clusters = _clusters(con, run.cluster_run_id)
    # The slow brute-force bot sprays three login endpoints one request at a time; its sessions' own
    # features differ by target, its client's do not (the matrix blends them), so it is one pattern too.
    attack = [s for s in clusters if campaign[s] != "benign"]
    ari = adjusted_rand_score([campaign[s] for s in attack], [clusters[s] for s in attack])
    assert ari >= 0.9, ari
    bot = [s for s in campaign if campaign[s] == "slow_bot"]
    assert sum(clusters.get(s, -1) >= 0 for s in bot) >= 0.9 * len(bot)
    assert len({clusters[s] for s in bot if clusters.get(s, -1) >= 0}) == 1
    family = {name: ("benign" if name == "benign" else SPECS[name].family) for name in set(campaign.values())}
    benign_in_attack_clusters = 0
    for cid in set(clusters.values()) - {-1}:       # clusters are one family, benign sessions stay out of attacks
        members = Counter(family[campaign[s]] for s in clusters if clusters[s] == cid)
        top, count = members.most_common(1)[0]
        assert count >= 0.9 * sum(members.values()), members
        benign_in_attack_clusters += members["benign"] if top != "benign" else 0
    assert benign_in_attack_clusters <= 0.05 * sum(1 for s in campaign if campaign[s] == "benign")
    profiles = con.execute("SELECT profile FROM cluster_profiles WHERE cluster_run_id = $r", {"r": run.cluster_run_id}).fetchall()
    first = json.loads(profiles[0][0])
    assert first["top_paths"] and first["distinguishing_features"] and first["typical_sessions"]
    assert first["exemplar_requests"][0]["path"]


def test_same_input_same_run(generated):
    con, _, _ = generated
    a = cluster_sessions(con, ClusterOptions(min_cluster_size=10, seed=3))
    b = cluster_sessions(con, ClusterOptions(min_cluster_size=10, seed=3))
    assert list(_clusters(con, a.cluster_run_id).items()) and _clusters(con, a.cluster_run_id) == _clusters(con, b.cluster_run_id)


def test_late_campaigns_emerge_in_a_later_window(generated):
    con, log, summary = generated
    start = summary.start.replace(tzinfo=None)
    span = (summary.end.replace(tzinfo=None) - start) / 4
    last_second = timedelta(seconds=1)  # the last window reaches past the end; windows touch, never overlap
    runs = [cluster_sessions(con, ClusterOptions(since=start + i * span,
                                                 until=start + (i + 1) * span + (last_second if i == 3 else timedelta(0))))
            for i in range(4)]
    campaign = campaign_of_sessions(con, log)
    last = runs[-1]
    clusters = _clusters(con, last.cluster_run_id)
    emerging_campaigns = {Counter(campaign[s] for s, c in clusters.items() if c == cid).most_common(1)[0][0]
                          for cid in last.emerging}
    assert {"path_traversal", "cmd_injection"} <= emerging_campaigns
    statuses = dict(con.execute("SELECT cluster_id, status FROM cluster_profiles WHERE cluster_run_id = $r",
                                {"r": last.cluster_run_id}).fetchall())
    assert set(statuses.values()) <= {"new", "growing", "stable", "fading"}


def test_real_scanners_are_selected_and_never_merged_with_browsing(tmp_path, access_logs):
    con = fresh_db(tmp_path)
    for path in access_logs:
        ingest(con, path, source=path.name)
    update_derived(con)
    run = cluster_sessions(con, ClusterOptions(min_cluster_size=5))
    clusters = _clusters(con, run.cluster_run_id)
    source_of = dict(con.execute("""SELECT session_id, any_value(s.name) FROM requests r JOIN sources s USING (source_id)
                                   GROUP BY 1""").fetchall())
    scanner_sessions = [s for s, src in source_of.items() if src.startswith("scanner_")
                        and con.execute("SELECT n_requests FROM sessions WHERE session_id = $s", {"s": s}).fetchall()[0][0] > 100]
    assert scanner_sessions and all(s in clusters for s in scanner_sessions)   # selected as suspicious
    for s in scanner_sessions:
        cid = clusters[s]
        if cid >= 0:
            mates = {source_of[o] for o, c in clusters.items() if c == cid}
            assert all(m.startswith("scanner_") for m in mates), mates


@pytest.mark.parametrize("case", ["empty window", "too few", "identical", "non-finite"])
def test_edge_cases_give_a_defined_result(tmp_path, case):
    con = fresh_db(tmp_path)
    count = 3 if case == "too few" else 30
    lines = [combined_line(f"10.0.{i // 250}.{i % 250}", at(i * 3600), "GET /wp-login.php?x=%27or%201=1 HTTP/1.1",
                           agent="sqlmap/1.0") for i in range(count)]
    ingest(con, write_log(tmp_path / "a.log", lines))
    update_derived(con)
    if case == "non-finite":
        con.execute("UPDATE session_features SET iat_cv = 'nan'::DOUBLE, request_rate = 'inf'::DOUBLE")
    options = ClusterOptions(min_cluster_size=5)
    if case == "empty window":
        options.since, options.until = datetime(2001, 1, 1), datetime(2001, 1, 2)
    run = cluster_sessions(con, options)
    stored = con.execute("SELECT n_selected, n_clusters, message FROM cluster_runs WHERE cluster_run_id = $r",
                         {"r": run.cluster_run_id}).fetchall()[0]
    if case == "empty window":
        assert stored == (0, 0, "no sessions in the window")
    elif case == "too few":
        assert stored[0] == 3 and stored[1] == 0 and "fewer than min-cluster-size" in stored[2]
    else:
        assert run.n_selected == 30 and run.n_clusters <= 1 and (run.n_clusters == 1 or run.message)


def test_a_single_run_lists_the_late_campaigns_first(generated):
    con, log, _ = generated
    for table in ("cluster_runs", "session_clusters", "cluster_profiles"):   # a first run: no predecessor
        con.execute(f"DELETE FROM {table}")
    fresh = cluster_sessions(con, ClusterOptions(min_cluster_size=10))
    campaign = campaign_of_sessions(con, log)
    clusters = _clusters(con, fresh.cluster_run_id)
    names = [Counter(campaign[s] for s, c in clusters.items() if c == cid).most_common(1)[0][0] for cid in fresh.emerging]
    late = {"path_traversal", "cmd_injection"}          # they start in the last quarter of the window
    assert late <= set(names), names
    until_both = max(names.index(n) for n in late)
    assert set(names[:until_both + 1]) == late, names   # nothing else comes before them


def test_assignment_agrees_with_the_fit_and_places_later_sessions(generated):
    from waflens.clustering.assign import assign_sessions

    con, log, summary = generated
    start = summary.start.replace(tzinfo=None)
    cut = start + (summary.end.replace(tzinfo=None) - start) * 0.7
    run = cluster_sessions(con, ClusterOptions(until=cut, min_cluster_size=10))
    fitted = _clusters(con, run.cluster_run_id)
    assert assign_sessions(con, run.cluster_run_id, list(fitted)) == fitted          # the fit, exactly
    assert assign_sessions(con, run.cluster_run_id, list(fitted)) == fitted          # and deterministic
    campaign = campaign_of_sessions(con, log)
    majority = {cid: Counter(campaign[s] for s, c in fitted.items() if c == cid).most_common(1)[0][0]
                for cid in set(fitted.values()) if cid >= 0}
    later = [s for (s,) in con.execute("SELECT session_id FROM sessions WHERE start_ts >= $c", {"c": cut}).fetchall()
             if campaign[s] in set(majority.values()) - {"benign"}]
    assigned = assign_sessions(con, run.cluster_run_id, later)
    placed = [s for s in later if assigned[s] >= 0]
    family = {name: ("benign" if name == "benign" else SPECS[name].family) for name in set(campaign.values())}
    wrong = Counter((campaign[s], majority[assigned[s]]) for s in placed if family[majority[assigned[s]]] != family[campaign[s]])
    assert placed and not wrong, wrong       # the slow bot's /login attempts may join the stuffing cluster: same family


def test_cluster_ids_carry_on_between_runs(generated):
    """[D3] A pattern keeps its cluster id in the next run; a new pattern gets an id no run has used."""
    con, log, summary = generated
    ensure_cluster_schema(con)
    for table in ("cluster_runs", "session_clusters", "cluster_profiles"):   # run 2 follows run 1, nothing else
        con.execute(f"DELETE FROM {table}")
    start = summary.start.replace(tzinfo=None)
    end = summary.end.replace(tzinfo=None) + timedelta(seconds=1)
    first = cluster_sessions(con, ClusterOptions(until=start + (end - start) * 0.7, min_cluster_size=10))
    second = cluster_sessions(con, ClusterOptions(until=end, min_cluster_size=10))   # overlaps run 1, and goes on
    campaign = campaign_of_sessions(con, log)

    def majority(run_id):
        members: dict[int, Counter] = {}
        for s, c in _clusters(con, run_id).items():
            if c >= 0:
                members.setdefault(c, Counter())[campaign[s]] += 1
        return {c: m.most_common(1)[0][0] for c, m in members.items()}

    before, after = majority(first.cluster_run_id), majority(second.cluster_run_id)
    profiles = con.execute("""SELECT cluster_id, predecessor_run_id, predecessor_id FROM cluster_profiles
                              WHERE cluster_run_id = $r""", {"r": second.cluster_run_id}).fetchall()
    assert sorted(c for c, _, _ in profiles) == sorted(after), "profiles and memberships use the same ids"
    assert second.n_clusters == len(after) and len(after) >= 5
    carried = [(c, p) for c, run, p in profiles if run == first.cluster_run_id]
    assert len(carried) >= 3 and all(c == p for c, p in carried), carried   # a successor keeps its predecessor's id
    same = [c for c, _ in carried if after[c] == before[c] != "benign"]
    assert same, (before, after)                                             # ... and it is the same campaign
    for late in ("path_traversal", "cmd_injection"):                         # they start after run 1's window
        ids = [c for c, name in after.items() if name == late]
        assert ids and all(c > max(before) for c in ids), (late, ids, before)   # fresh: above every id used before


def test_split_keeps_the_id_on_the_larger_part_and_new_ids_are_never_reused():
    from waflens.clustering.emerging import carried_ids

    # run 1: cluster 4 (6 sessions), cluster 9 (2 sessions, vanishes now), noise; ids up to 9 were used
    before = {1: 4, 2: 4, 3: 4, 4: 4, 5: 4, 6: 4, 7: 9, 8: 9, 10: -1}
    # this run's HDBSCAN labels: 0 got four of cluster 4's sessions, 1 got two of them (a split), 2 is made of noise
    placed = {1: 0, 2: 0, 3: 0, 4: 0, 5: 1, 6: 1, 7: -1, 8: -1, 10: 2}
    labels = np.array([0] * 5 + [1] * 9 + [2] * 3 + [-1] * 4)
    ids = carried_ids(labels, before, placed, max_used=9)
    assert ids[0] == 4                          # the part that kept most of cluster 4 carries its id
    assert ids[1] == 10 and ids[2] == 11        # the others: fresh ids, never 9 (vanished) nor any used before
    assert -1 not in ids                        # noise stays -1


def test_a_run_records_the_dimensions_hdbscan_saw_and_assignment_rebuilds_them(generated):
    """Placing sessions in a run rebuilds its space: with the PCA dimensions the run was made with (issue C2 cut
    them 12 -> 8), and 12 for a run stored before they were recorded."""
    from waflens.clustering.assign import assign_sessions
    from waflens.data.errors import InputError

    con, log, summary = generated
    with pytest.raises(InputError, match="hdbscan_dimensions 0"):
        cluster_sessions(con, ClusterOptions(hdbscan_dimensions=0))
    start = summary.start.replace(tzinfo=None)
    run = cluster_sessions(con, ClusterOptions(until=start + (summary.end.replace(tzinfo=None) - start) * 0.5,
                                               min_cluster_size=10, hdbscan_dimensions=5))
    params = json.loads(con.execute("SELECT params FROM cluster_runs WHERE cluster_run_id = $r",
                                    {"r": run.cluster_run_id}).fetchall()[0][0])
    assert params["hdbscan_dimensions"] == 5
    fitted = _clusters(con, run.cluster_run_id)
    assert assign_sessions(con, run.cluster_run_id, list(fitted)) == fitted
    del params["hdbscan_dimensions"]                   # as a run stored before: assignment still works
    con.execute("UPDATE cluster_runs SET params = $p WHERE cluster_run_id = $r",
                {"p": json.dumps(params), "r": run.cluster_run_id})
    assert assign_sessions(con, run.cluster_run_id, list(fitted)) == fitted
