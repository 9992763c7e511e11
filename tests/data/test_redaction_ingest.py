"""No generated secret or IP survives real ingest, by any input path, in any VARCHAR column of any table."""

import ipaddress
import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from waflens.data.sessionize import update_derived
from tests.data.helpers import fresh_db, ingest
from tests.data.hostile_inputs import Planted, every_path, ips, leaks, secrets, varchar_texts


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(secrets, min_size=7, max_size=7, unique=True), st.lists(ips, min_size=5, max_size=5))
def test_no_secret_or_ip_reaches_the_database(planted_secrets, planted_ips):
    planted = Planted(planted_secrets, planted_ips)
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        con = fresh_db(folder)
        try:
            for path, options in every_path(planted, folder):
                summary = ingest(con, path, **options)
                assert summary.parsed >= 1 and summary.quarantined == 1, path.name
            update_derived(con)
            texts = varchar_texts(con)
            assert {"requests.headers", "requests.body", "quarantine.raw", "requests.user_agent"} <= set(texts)
            assert leaks(texts, planted.needles()) == []
            for (headers,) in con.execute("SELECT headers FROM requests WHERE headers IS NOT NULL").fetchall():
                assert isinstance(json.loads(headers), dict)          # masking keeps the JSON valid
        finally:
            con.close()


def test_the_planted_values_are_where_the_test_thinks(tmp_path):
    """Without the redaction (lab mode keeps IPs and cookies) the same files do hold the IPs."""
    planted = Planted([f"Sk{i}Zsecret{i}" for i in range(7)],
                      [ipaddress.ip_address(a) for a in ("192.0.2.10", "2a01::5", "fe80::1", "::1", "10.0.0.9")])
    con = fresh_db(tmp_path)
    for path, options in every_path(planted, tmp_path):
        ingest(con, path, pseudonymize=False, **options)
    found = {needle for _, needle in leaks(varchar_texts(con), planted.needles())}
    assert {"192.0.2.10", "2a01::5", "fe80::1", "::1", "10.0.0.9"} <= found
    s = planted.secrets
    assert found & set(s) == {s[0], s[2]}         # lab mode keeps cookie values; every other secret is masked


def test_detection_features_still_see_payloads(tmp_path):
    """Masking is limited to secret-named values and addresses: the attack in `q` is counted as before."""
    from tests.data.helpers import at, combined_line, write_log

    log = write_log(tmp_path / "a.log", [
        combined_line("192.0.2.1", at(0), "GET /search?q=1%27%20UNION%20SELECT%20password%20FROM%20users--"
                                          "&access_token=Sk0123456789 HTTP/1.1"),
        combined_line("192.0.2.1", at(1), "GET /search?q=1%27%20UNION%20SELECT%20password%20FROM%20users-- HTTP/1.1")])
    con = fresh_db(tmp_path)
    ingest(con, log)
    update_derived(con)
    rows = con.execute("""SELECT r.query, f.sql_tokens, f.quote_count FROM requests r JOIN request_features f
                          USING (request_id) ORDER BY r.record""").fetchall()
    assert rows[0][0].endswith("&access_token=[redacted]") and "UNION" in rows[0][0]
    assert rows[0][1:] == rows[1][1:] and rows[0][1] >= 2

