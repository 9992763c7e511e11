"""Feature SQL against the reference definitions in waflens.data.feature_spec, and hand-computed values."""

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from waflens.data.feature_spec import FEATURE_SPEC_VERSION, feature_names, reference_request_features
from waflens.data.ingest import ingest_file, IngestOptions
from waflens.data.pseudonymize import Pseudonymizer
from waflens.data.sessionize import update_derived
from tests.data.helpers import TEST_KEY, at, combined_line, fresh_db, ingest, write_log

REQUEST_COLUMNS = feature_names("request")


def _sql_features(con):
    rows = con.execute(
        f"""SELECT r.method, r.path, r.query, r.body, r.user_agent, r.referer, {", ".join("f." + c for c in REQUEST_COLUMNS)}
            FROM requests r JOIN request_features f USING (request_id) ORDER BY request_id"""
    ).fetchall()
    return [(row[:6], dict(zip(REQUEST_COLUMNS, row[6:]))) for row in rows]


def _assert_same(reference: dict, computed: dict, context) -> None:
    assert set(reference) == set(computed)
    for name, expected in reference.items():
        got = computed[name]
        if isinstance(expected, float):
            assert math.isclose(got, expected, rel_tol=1e-9, abs_tol=1e-9), (name, expected, got, context)
        else:
            assert got == expected, (name, expected, got, context)


def test_feature_tables_have_exactly_the_spec_columns(tmp_path):
    con = fresh_db(tmp_path)
    columns = [r[0] for r in con.execute("DESCRIBE request_features").fetchall()]
    assert columns == ["request_id"] + REQUEST_COLUMNS
    columns = [r[0] for r in con.execute("DESCRIBE session_features").fetchall()]
    assert columns == ["session_id"] + feature_names("session")
    assert FEATURE_SPEC_VERSION


def test_hand_computed_request_features(tmp_path):
    log = write_log(tmp_path / "a.log", [
        combined_line("10.0.0.1", at(0), "GET /shop/item.php?id=1%27%20UNION%20SELECT%20pass--&x=%252e HTTP/1.1",
                      agent="sqlmap/1.7.2#stable (https://sqlmap.org)"),
        combined_line("10.0.0.2", at(1), "GET /static/app.CSS HTTP/1.1", referer="http://shop.example/"),
    ])
    con = fresh_db(tmp_path)
    ingest(con, log)
    update_derived(con)
    (_, attack), (_, asset) = _sql_features(con)
    # P = "/shop/item.php\nid=1' UNION SELECT pass--&x=%2e\n"
    assert attack["sql_tokens"] == 3          # union, select, --
    assert attack["quote_count"] == 1
    assert attack["n_params"] == 2
    assert attack["pct_encoded"] == 5         # %27 %20 %20 %20 %25
    assert attack["double_encoded"] == 1      # %252e
    assert attack["traversal_tokens"] == 1    # "%252e" in the raw query
    assert attack["ext_class"] == 2           # .php
    assert attack["ua_class"] == 1            # sqlmap
    assert attack["path_depth"] == 2
    assert attack["has_referer"] == 0
    assert attack["max_value_len"] == len("1%27%20UNION%20SELECT%20pass--")
    assert asset["ext_class"] == 1            # .CSS, case-insensitive
    assert asset["ua_class"] == 0
    assert asset["has_referer"] == 1
    assert asset["attack_tokens"] == 0
    assert asset["entropy"] > 0


def test_sql_matches_reference_on_real_logs(tmp_path, access_logs):
    con = fresh_db(tmp_path)
    for path in access_logs:
        ingest(con, path)
    update_derived(con)
    rows = _sql_features(con)
    assert len(rows) > 40_000
    for inputs, computed in rows[::7]:
        _assert_same(reference_request_features(*inputs), computed, inputs)


hostile_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=60)
url_piece = st.text(alphabet="abcXYZ019%25'\"<>/\\.;|&=?+-_{}$()`ÿé\x00 ", max_size=40)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(requests=st.lists(st.tuples(st.sampled_from(["GET", "POST", "HEAD", "PUT", "PROPFIND"]),
                                   url_piece, url_piece, hostile_text), min_size=1, max_size=8))
def test_sql_matches_reference_on_generated_requests(tmp_path_factory, requests):
    tmp_path = tmp_path_factory.mktemp("feat")
    lines = [combined_line("10.1.1.1", at(i), f"{method} /{path.replace(' ', '%20')}?{query.replace(' ', '+')} HTTP/1.1",
                           agent=agent.replace("\r", " ").replace("\n", " ") or "-")
             for i, (method, path, query, agent) in enumerate(requests)]
    log = write_log(tmp_path / "g.log", lines)
    con = fresh_db(tmp_path)
    summary = ingest(con, log)
    update_derived(con)
    rows = _sql_features(con)
    assert len(rows) == summary.parsed
    for inputs, computed in rows:
        _assert_same(reference_request_features(*inputs), computed, inputs)
