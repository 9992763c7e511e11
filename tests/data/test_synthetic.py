"""The synthetic traffic generator: determinism, format, ground truth, campaigns and payloads."""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import unquote, unquote_plus

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import waflens.data.synthetic_payloads as payload_module
from waflens.data.errors import InputError
from waflens.data.synthetic import CAMPAIGNS, generate_traffic
from waflens.data.synthetic_payloads import SAMPLES_DIR, apache_escape, encode_query_value

REPO = Path(__file__).resolve().parents[2]
LINE = re.compile(r'^(\S+) (\S+) (\S+) \[([^\]]+)\] "((?:[^"\\]|\\.)*)" (\d{3}) (\d+|-) '
                  r'"((?:[^"\\]|\\.)*)" "((?:[^"\\]|\\.)*)"$')
NAMES = set(CAMPAIGNS) | {"benign"}
GAP = 1800
INJECTION_FILES = {"sqli_scan": ("sqli.txt",), "xss_probe": ("xss.txt",),
                   "path_traversal": ("path_traversal.txt", "lfi.txt"), "cmd_injection": ("cmd_injection.txt",)}
# Placeholders of the upstream lists (the generator fills them; here they match anything).
PLACEHOLDERS = re.compile(r"\\\{FILE\\\}|\\\{cmd\\\}|__TIME__|<username>|<filepath>|<attackerip>|<sessid>")


class Traffic:
    """A generated log, parsed: one row per line with its truth label."""

    def __init__(self, summary, days: float = 3.0):
        self.summary = summary
        self.raw = summary.log_path.read_bytes()
        self.lines = self.raw.decode("ascii").split("\n")
        assert self.lines.pop() == "", "the log must end with a newline"
        truth = summary.truth_path.read_text().split("\n")
        assert truth.pop() == ""
        self.truth_header, self.truth = truth[0], [row.split(",") for row in truth[1:]]
        self.labels = [campaign for _, campaign in self.truth]
        self.campaigns = json.loads(summary.log_path.with_name(summary.log_path.name + ".campaigns.json").read_text())
        stamps: dict[str, float] = {}
        self.rows = []
        for line in self.lines:
            m = LINE.match(line)
            assert m, f"not a combined line: {line[:200]!r}"
            if m[4] not in stamps:
                stamps[m[4]] = datetime.strptime(m[4], "%d/%b/%Y:%H:%M:%S %z").timestamp()
            self.rows.append((m[1], stamps[m[4]], m[5], int(m[6]), m[8], m[9]))

    def of(self, campaign: str) -> list[tuple]:
        return [row for row, label in zip(self.rows, self.labels) if label == campaign]


def _generate(tmp: Path, n: int, seed: int, **options) -> Traffic:
    return Traffic(generate_traffic(tmp / "traffic.log", n, seed, **options))


@pytest.fixture(scope="module")
def traffic(tmp_path_factory) -> Traffic:
    """20,000 requests, 3 days, the bundled payload samples (needs nothing outside the repo)."""
    return _generate(tmp_path_factory.mktemp("samples"), 20_000, 7, payload_dir=SAMPLES_DIR)


@pytest.fixture(scope="module")
def shared_traffic(tmp_path_factory, payload_dir) -> Traffic:
    return _generate(tmp_path_factory.mktemp("shared"), 20_000, 3, payload_dir=payload_dir)


def _query_values(request: str) -> list[str]:
    target = request.split(" ")[1]
    query = target.split("?", 1)[1] if "?" in target else ""
    return [unquote_plus(pair.split("=", 1)[1]) for pair in query.split("&") if "=" in pair]


def _payload_matcher(directory: Path, files) -> callable:
    """Does a decoded value end with a payload of these files (as ``unquote`` reads the line)?"""
    exact, patterns = set(), []
    for name in files:
        for line in (directory / name).read_text(encoding="utf-8").split("\n"):
            if not line.strip():
                continue
            line = unquote(line.rstrip("\r").rstrip("\t"))
            pattern = PLACEHOLDERS.sub(".+", re.escape(line))
            if pattern != re.escape(line):
                patterns.append(pattern)
            exact.add(line)
    regex = re.compile("(?:" + "|".join(patterns) + r")\Z", re.S) if patterns else None

    def matches(value: str) -> str | None:
        for i in range(len(value)):
            if value[i:] in exact:
                return value[i:]
        m = regex.search(value) if regex else None
        return m[0] if m else None
    return matches


def _apache_unescape(field: str) -> bytes:
    simple = {'"': b'"', "\\": b"\\", "n": b"\n", "r": b"\r", "t": b"\t", "b": b"\b", "v": b"\v"}
    out, i = bytearray(), 0
    while i < len(field):
        if field[i] == "\\":
            if field[i + 1] == "x":
                out.append(int(field[i + 2:i + 4], 16))
                i += 4
            else:
                out += simple[field[i + 1]]
                i += 2
        else:
            out += field[i].encode("ascii")
            i += 1
    return bytes(out)


def _sessions(traffic: Traffic) -> Counter:
    """Sessions per label at a 30-minute inactivity gap on (ip, user agent)."""
    last: dict[tuple[str, str], float] = {}
    counts: Counter = Counter()
    for (ip, t, _, _, _, agent), label in zip(traffic.rows, traffic.labels):
        key = (ip, agent)
        if key not in last or t - last[key] > GAP:
            counts[label] += 1
        last[key] = t
    return counts


# --- determinism ---------------------------------------------------------------------------------

def _files(summary) -> list[bytes]:
    log = summary.log_path
    return [log.read_bytes(), summary.truth_path.read_bytes(),
            log.with_name(log.name + ".campaigns.json").read_bytes()]


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir(), (tmp_path / "c").mkdir()
    a = generate_traffic(tmp_path / "a" / "x.log", 4000, 11, payload_dir=SAMPLES_DIR)
    b = generate_traffic(tmp_path / "b" / "x.log", 4000, 11, payload_dir=SAMPLES_DIR)
    c = generate_traffic(tmp_path / "c" / "x.log", 4000, 12, payload_dir=SAMPLES_DIR)
    assert _files(a) == _files(b)
    assert a._replace(log_path=None, truth_path=None) == b._replace(log_path=None, truth_path=None)
    assert _files(a)[0] != _files(c)[0] and _files(a)[1] != _files(c)[1]


def test_same_bytes_in_another_process_with_another_hash_seed(tmp_path):
    here = generate_traffic(tmp_path / "here.log", 3000, 5, payload_dir=SAMPLES_DIR)
    code = ("import sys; from pathlib import Path; from waflens.data.synthetic import generate_traffic; "
            "generate_traffic(Path(sys.argv[1]), 3000, 5, payload_dir=Path(sys.argv[2]))")
    env = {**os.environ, "PYTHONHASHSEED": "12345" if os.environ.get("PYTHONHASHSEED") != "12345" else "54321",
           "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "there.log"), str(SAMPLES_DIR)],
                   check=True, env=env, cwd=REPO, timeout=120)
    there = tmp_path / "there.log"
    assert here.log_path.read_bytes() == there.read_bytes()
    assert here.truth_path.read_bytes() == Path(str(there) + ".truth.csv").read_bytes()


# --- counts and ground truth ------------------------------------------------------------------------

@pytest.mark.parametrize("n, share", [(1, 0.15), (7, 0.15), (40, 1.0), (900, 0.0), (3000, 0.5)])
def test_exactly_n_lines_and_truth_rows(tmp_path, n, share):
    t = _generate(tmp_path, n, 1, attack_share=share, payload_dir=SAMPLES_DIR)
    assert len(t.lines) == t.summary.requests == n
    assert t.raw.count(b"\n") == n and b"\r" not in t.raw
    assert t.truth_header == "record,campaign"
    assert [int(record) for record, _ in t.truth] == list(range(1, n + 1))
    assert set(t.labels) <= NAMES
    assert sum(t.summary.campaigns.values()) == n
    assert t.summary.campaigns == {name: t.labels.count(name) for name in ["benign", *CAMPAIGNS]}
    assert abs(t.labels.count("benign") - round(n * (1 - share))) <= 1


def test_every_campaign_present_and_benign_share(traffic):
    counts = Counter(traffic.labels)
    assert len(traffic.lines) == 20_000
    assert set(CAMPAIGNS) <= set(counts), f"missing campaigns: {set(CAMPAIGNS) - set(counts)}"
    assert abs(counts["benign"] / 20_000 - 0.85) <= 0.05
    assert traffic.summary.campaigns == {name: counts[name] for name in ["benign", *CAMPAIGNS]}


@pytest.mark.parametrize("share", [0.05, 0.3])
def test_attack_share_is_respected(tmp_path, share):
    t = _generate(tmp_path, 6000, 2, attack_share=share, payload_dir=SAMPLES_DIR)
    assert abs(t.labels.count("benign") / 6000 - (1 - share)) <= 0.05


# --- format and time -----------------------------------------------------------------------------------

def test_lines_are_combined_format_in_time_order(traffic):
    times = [row[1] for row in traffic.rows]
    assert all(a <= b for a, b in zip(times, times[1:]))
    summary = traffic.summary
    assert summary.start.timestamp() == times[0] and summary.end.timestamp() == times[-1]
    assert summary.start.tzinfo is not None and summary.start.utcoffset() == timedelta(0)
    window_start = datetime(2026, 11, 1, tzinfo=timezone.utc).timestamp()
    assert window_start <= times[0] and times[-1] < window_start + 3 * 86400
    for _, _, request, _, _, _ in traffic.rows:
        method, target, protocol = request.split(" ")
        assert method in ("GET", "POST", "HEAD") and protocol in ("HTTP/1.1", "HTTP/2.0")
        assert target.startswith("/") and target.isascii() and target.isprintable()
    assert all(line.isascii() for line in traffic.lines)


def test_custom_start_and_days(tmp_path):
    start = datetime(2027, 2, 27, 22, 30, tzinfo=timezone(timedelta(hours=2)))
    t = _generate(tmp_path, 2000, 4, start=start, days=0.5, payload_dir=SAMPLES_DIR)
    times = [row[1] for row in t.rows]
    assert start.timestamp() <= times[0] and times[-1] < start.timestamp() + 0.5 * 86400
    assert all(" +0000] " in line for line in t.lines)
    assert t.campaigns["window"]["start"] == "2027-02-27T20:30:00Z"


def test_campaign_starts_recorded_and_two_emerge_late(traffic):
    first, last = {}, {}
    for (_, t, *_), label in zip(traffic.rows, traffic.labels):
        first.setdefault(label, t)
        last[label] = t
    recorded = traffic.campaigns["campaigns"]
    assert set(recorded) == set(CAMPAIGNS)
    iso = lambda s: datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()  # noqa: E731
    for name in CAMPAIGNS:
        assert iso(recorded[name]["start"]) == first[name] and iso(recorded[name]["end"]) == last[name], name
    t0, t1 = traffic.rows[0][1], traffic.rows[-1][1]
    fractions = {name: (first[name] - t0) / (t1 - t0) for name in CAMPAIGNS}
    assert sum(f >= 0.75 for f in fractions.values()) >= 2, fractions
    assert sum(f < 0.5 for f in fractions.values()) >= 4, fractions
    assert all(last[name] - first[name] >= 3 * 3600 for name in CAMPAIGNS)  # each lasts a while


# --- clients and sessions ------------------------------------------------------------------------------

def test_campaign_clients_disjoint_and_enough_sessions(traffic):
    ips = defaultdict(set)
    for (ip, *_), label in zip(traffic.rows, traffic.labels):
        ips[label].add(ip)
    for name in CAMPAIGNS:
        assert not ips[name] & ips["benign"], name
        assert sorted(traffic.campaigns["campaigns"][name]["clients"]) == sorted(ips[name])
        for other in CAMPAIGNS:
            assert other == name or not ips[name] & ips[other]
    assert len(ips["credential_stuffing"]) >= 20
    sessions = _sessions(traffic)
    assert all(sessions[name] >= 10 for name in CAMPAIGNS), sessions
    # every planned burst is exactly one session: the truth the clustering benchmark relies on
    planned = {name: traffic.campaigns["campaigns"][name]["planned_sessions"] for name in CAMPAIGNS}
    assert {name: sessions[name] for name in CAMPAIGNS} == planned


def test_campaign_agents_and_shapes(traffic):
    agents = {name: {row[5] for row in traffic.of(name)} for name in CAMPAIGNS}
    assert agents["sqli_scan"] == {"sqlmap/1.8.11#stable (https://sqlmap.org)"}
    assert any(a.startswith("Mozilla/5.0") for a in agents["vuln_scanner"])  # a scanner posing as a browser
    stuffing = traffic.of("credential_stuffing")
    assert {r[2] for r in stuffing} <= {"POST /login HTTP/1.1", "GET /login HTTP/1.1"}
    assert {r[3] for r in stuffing if r[2].startswith("POST")} == {200, 401}
    scraper = traffic.of("scraper")
    assert all(re.fullmatch(r"GET /product/\d+ HTTP/1\.1", r[2]) for r in scraper)
    scanner_paths = {r[2].split(" ")[1] for r in traffic.of("vuln_scanner")}
    assert {"/.env", "/.git/config", "/wp-login.php"} <= scanner_paths
    assert Counter(r[3] for r in traffic.of("vuln_scanner")).most_common(1)[0][0] == 404
    slow = traffic.of("slow_bot")
    hours = (slow[-1][1] - slow[0][1]) / 3600
    assert hours > 48 and len(slow) / hours < 10


def test_benign_traffic_looks_like_browsing(traffic):
    benign = traffic.of("benign")
    statuses = Counter(r[3] for r in benign)
    assert (statuses[200] + statuses[304]) / len(benign) > 0.9 and statuses[404] and statuses[301]
    assets = [r for r in benign if r[2].split(" ")[1].startswith(("/static/", "/images/"))]
    assert len(assets) > len(benign) / 3
    assert all(r[4].startswith("https://www.northwind-outfitters.example/") for r in assets)
    assert any(":" in r[0] for r in benign)  # IPv6 visitors
    agents_by_ip = defaultdict(set)
    for r in benign:
        agents_by_ip[r[0]].add(r[5])
    assert any(len(a) == 2 for a in agents_by_ip.values())  # NAT
    assert len({r[5] for r in benign if "bot" not in r[5]}) >= 20
    crawler_first = {}
    for r in benign:
        if "Googlebot" in r[5] or "bingbot" in r[5]:
            crawler_first.setdefault((r[0], r[5]), r[2])
    assert crawler_first and all(req == "GET /robots.txt HTTP/1.1" for req in crawler_first.values())
    by_hour = Counter(int(((t / 3600) + 1) % 24) for _, t, *_ in benign)  # CET
    day, night = sum(by_hour[h] for h in range(10, 20)), sum(by_hour[h] for h in range(0, 10))
    assert day > 1.5 * night


# --- payloads ------------------------------------------------------------------------------------------

def _check_injection_payloads(traffic: Traffic, directory: Path) -> None:
    for name, files in INJECTION_FILES.items():
        matcher = _payload_matcher(directory, files)
        rows = traffic.of(name)
        found = []
        for row in rows:
            hits = [m for m in map(matcher, _query_values(row[2])) if m]
            assert hits, f"{name}: no payload of {files} in {row[2][:200]!r}"
            found.append(hits[0])
        assert len(set(found)) >= min(30, len(rows) // 3), f"{name}: too few distinct payloads"


def test_payloads_from_shared_files_appear_in_their_campaign(shared_traffic, payload_dir):
    _check_injection_payloads(shared_traffic, payload_dir)
    # sqli payloads do not show up in the xss campaign, and the other way round
    sqli_only = _payload_matcher(payload_dir, ("sqli.txt",))
    xss_values = [v for r in shared_traffic.of("xss_probe") for v in _query_values(r[2])]
    assert sum(bool(sqli_only(v)) for v in xss_values) < len(xss_values) / 2


def test_bundled_samples_work_as_payload_dir(traffic):
    _check_injection_payloads(traffic, SAMPLES_DIR)


def test_fallback_order_env_then_shared_then_samples(tmp_path, monkeypatch):
    monkeypatch.delenv(payload_module.ENV_VAR, raising=False)
    monkeypatch.delenv("WAFLENS_SHARED_DATASETS", raising=False)
    monkeypatch.setattr(payload_module, "SHARED_PAYLOADS", tmp_path / "absent")
    fallback = generate_traffic(tmp_path / "fallback.log", 3000, 9)
    explicit = generate_traffic(tmp_path / "explicit.log", 3000, 9, payload_dir=SAMPLES_DIR)
    assert fallback.log_path.read_bytes() == explicit.log_path.read_bytes()
    custom = tmp_path / "custom"
    custom.mkdir()
    for family in ("sqli", "xss", "path_traversal", "lfi", "cmd_injection"):
        (custom / f"{family}.txt").write_text(f"' {family.upper()}-MARKER --\n")
    monkeypatch.setenv(payload_module.ENV_VAR, str(custom))
    t = _generate(tmp_path, 3000, 9)
    assert all("SQLI-MARKER" in " ".join(_query_values(r[2])) for r in t.of("sqli_scan"))


def test_samples_are_verbatim_lines_of_the_shared_files(payload_dir):
    for family in ("sqli", "xss", "path_traversal", "lfi", "cmd_injection"):
        sample = (SAMPLES_DIR / f"{family}.txt").read_text(encoding="utf-8").split("\n")
        assert sample.pop() == ""
        shared = set((payload_dir / f"{family}.txt").read_text(encoding="utf-8").split("\n"))
        assert 10 <= len(sample) <= 40 and len(set(sample)) == len(sample)
        assert set(sample) <= shared, family
    readme = (SAMPLES_DIR / "README.md").read_text()
    assert "fuzzdb" in readme and "PayloadsAllTheThings" in readme and "MIT" in readme and "BSD-3" in readme


HOSTILE = ['"quoted" \\back\\slash\\', "cr\rinside", "nul\x00byte", "caf\u00e9 \u2603 \U0001f4a9",
           "esc\x1b[31m red", "del\x7f", 'tab\tinside "x"', "'; DROP TABLE users; --",
           "%zz%%41 + & = # ?", "\\x22 literal", "\x0b\x08\x0c"]


def test_hostile_payloads_never_break_lines(tmp_path):
    hostile = tmp_path / "hostile"
    hostile.mkdir()
    for family in ("sqli", "xss", "path_traversal", "lfi", "cmd_injection"):
        (hostile / f"{family}.txt").write_bytes(("\r\n".join(HOSTILE) + "\r\n").encode("utf-8"))
    t = _generate(tmp_path, 4000, 13, attack_share=0.6, payload_dir=hostile)
    assert len(t.lines) == 4000 and t.raw.count(b"\n") == 4000
    assert all(0x20 <= b < 0x7F for b in t.raw.replace(b"\n", b""))
    seen_in_query = {v for name in INJECTION_FILES for r in t.of(name) for v in _query_values(r[2])}
    assert {p for p in HOSTILE if any(v.endswith(unquote(p)) for v in seen_in_query)} == set(HOSTILE)
    referers = {_apache_unescape(r[4]) for r in t.of("xss_probe")} - {b"-"}
    assert referers and referers <= {p.encode("utf-8") for p in HOSTILE}
    assert any(b'"' in r for r in referers) and any(b"\\" in r for r in referers)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_apache_escape_round_trips_and_stays_in_its_field(text):
    escaped = apache_escape(text)
    assert escaped.isascii() and escaped.isprintable()
    assert re.fullmatch(r'(?:[^"\\]|\\.)*', escaped)
    assert _apache_unescape(escaped) == text.encode("utf-8")


@settings(max_examples=300, deadline=None)
@given(st.text(), st.sampled_from(["%20", "+"]))
def test_query_encoding_decodes_to_the_payload(text, space):
    encoded = encode_query_value(text, space)
    assert re.fullmatch(r"[A-Za-z0-9\-._~!*(),:@/%+]*", encoded)
    assert unquote_plus(encoded) == unquote(text)


# --- errors --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs", [dict(n_requests=0), dict(n_requests=2.5), dict(days=0), dict(days=float("nan")),
                                    dict(attack_share=1.5), dict(attack_share=-0.1)])
def test_bad_arguments_raise_input_error(tmp_path, kwargs):
    args = dict(n_requests=100, seed=1, payload_dir=SAMPLES_DIR) | kwargs
    with pytest.raises(InputError):
        generate_traffic(tmp_path / "x.log", args.pop("n_requests"), args.pop("seed"), **args)


def test_unusable_payload_dir_raises_input_error(tmp_path):
    with pytest.raises(InputError, match="not a directory"):
        generate_traffic(tmp_path / "x.log", 100, 1, payload_dir=tmp_path / "missing")
    (tmp_path / "partial").mkdir()
    (tmp_path / "partial" / "sqli.txt").write_text("' or 1=1--\n")
    with pytest.raises(InputError, match="xss.txt"):
        generate_traffic(tmp_path / "x.log", 100, 1, payload_dir=tmp_path / "partial")


# --- behaviour-neutral families (waflens.data.synthetic_neutral): only the payloads differ -------------------------

def _neutral(tmp: Path, seed: int = 7, **options):
    from waflens.data.synthetic_neutral import generate_neutral_traffic

    summary = generate_neutral_traffic(tmp / "neutral.log", options.pop("n", 16_000), seed, **options)
    lines = summary.log_path.read_text(encoding="latin-1").split("\n")
    assert lines.pop() == ""
    labels = [row.split(",")[1] for row in summary.truth_path.read_text().split("\n")[1:-1]]
    rows = []
    for line, label in zip(lines, labels):
        m = LINE.match(line)
        if m is None and label == "benign" and options.get("background") == "real":
            m = re.match(r"^(\S+) (\S+) (\S+) \[([^\]]+)\] \"(.*?)\" (\d{3}) (\S+) (\"-\")? ?\"?(.*)$", line)
        assert m, line[:200]          # (one real line has an unterminated agent: kept as the log has it)
        rows.append((m[1], datetime.strptime(m[4], "%d/%b/%Y:%H:%M:%S %z").timestamp(), m[5], int(m[6]), m[9]))
    return summary, lines, labels, rows


def _route(request: str) -> str:
    path = request.split(" ")[1].split("?")[0]
    return re.sub(r"^/category/[^/]+", "/category/*", re.sub(r"/\d+", "/N", path))


@pytest.fixture(scope="module")
def neutral(tmp_path_factory, shared_datasets):
    return _neutral(tmp_path_factory.mktemp("neutral"), shared_dir=shared_datasets)


def test_neutral_traffic_is_deterministic(tmp_path, shared_datasets):
    a = _neutral(tmp_path / "a", n=4000, shared_dir=shared_datasets)[0]
    b = _neutral(tmp_path / "b", n=4000, shared_dir=shared_datasets)[0]
    c = _neutral(tmp_path / "c", seed=8, n=4000, shared_dir=shared_datasets)[0]
    assert a.log_path.read_bytes() == b.log_path.read_bytes() != c.log_path.read_bytes()
    assert a.truth_path.read_bytes() == b.truth_path.read_bytes()


def test_neutral_families_share_pace_endpoints_statuses_and_agents(neutral):
    from random import Random

    from waflens.data.synthetic_neutral import NEUTRAL_CAMPAIGNS, SHARED_AGENTS, SHARED_TARGETS

    summary, _, labels, rows = neutral
    assert summary.campaigns["benign"] > 0 and all(summary.campaigns[f] > 100 for f in NEUTRAL_CAMPAIGNS)
    gaps, endpoints, statuses, agents, clients = {}, {}, {}, {}, {}
    for family in NEUTRAL_CAMPAIGNS:
        mine = sorted((r for r, label in zip(rows, labels) if label == family), key=lambda r: (r[0], r[1]))
        gaps[family] = sorted(b[1] - a[1] for a, b in zip(mine, mine[1:]) if a[0] == b[0] and b[1] - a[1] < GAP)
        endpoints[family] = {_route(r[2]) for r in mine}
        statuses[family] = Counter(r[3] for r in mine)
        agents[family] = {r[4] for r in mine}
        clients[family] = {r[0] for r in mine}
    routes = {_route(f"GET {head}") for head in [t(Random(0))[0] for t in SHARED_TARGETS.values()]}
    medians = [g[len(g) // 2] for g in gaps.values()]
    for family in NEUTRAL_CAMPAIGNS:
        assert 8 <= len(clients[family]) <= 12, family
        assert len(agents[family]) >= 2 and agents[family] <= set(SHARED_AGENTS), family
        assert endpoints[family] <= routes and len(endpoints[family]) >= 0.5 * len(routes), family
        share_ok = statuses[family][200] / sum(statuses[family].values())
        assert 0.45 <= share_ok <= 0.75 and len(statuses[family]) >= 4, (family, statuses[family])
    assert max(medians) <= 2.0 * min(medians), medians                          # one pace for all
    assert not set.union(*clients.values()) & {r[0] for r, label in zip(rows, labels) if label == "benign"}


def test_neutral_payloads_come_from_their_family_and_scanners_mix(neutral, payload_dir, shared_datasets):
    from random import Random

    from waflens.data.synthetic_families import FAMILIES, HTTP_PARAMS, load_family_payloads

    summary, _, labels, rows = neutral
    seed = json.loads(summary.log_path.with_name(summary.log_path.name + ".campaigns.json").read_text())["seed"]
    pools = load_family_payloads(payload_dir, Random(f"waflens-neutral:{seed}:payloads"), shared_datasets / HTTP_PARAMS)
    lines = {f: {unquote(p) for lst in pools[f].lists for p in lst} for f in FAMILIES}
    assert any("http_params_train" in n for n in pools["sqli"].names)   # HttpParamsDataset read at run time
    seen: dict[str, Counter] = defaultdict(Counter)
    for (ip, _, request, _, _), label in zip(rows, labels):
        if label == "benign":
            continue
        values = [unquote(v.replace("+", " ")) for v in _query_values(request)]
        for family in FAMILIES:
            if any(v in lines[family] for v in values):
                seen[(label, ip)][family] += 1
    for family in FAMILIES:       # an own family's request matches its own lists far more than any other's
        mine = Counter()
        for (label, _), hits in seen.items():
            if label == family:
                mine.update(hits)
        assert mine[family] > 0 and mine[family] >= 2 * max(mine[f] for f in FAMILIES if f != family), (family, mine)
    scanners = [hits for (label, _), hits in seen.items() if label == "scanner"]
    assert scanners and all(sum(1 for f in FAMILIES if hits[f]) >= 3 for hits in scanners)


def test_neutral_traffic_on_the_real_background(tmp_path, shared_datasets):
    from waflens.data.synthetic_neutral import REAL_BACKGROUND

    summary, lines, labels, rows = _neutral(tmp_path, background="real", attack_share=0.05, shared_dir=shared_datasets)
    real = []
    for name in REAL_BACKGROUND:
        with gzip.open(shared_datasets / "access_logs" / name, "rt", encoding="latin-1") as handle:
            real += [line.rstrip(" ") for line in handle.read().split("\n") if line.strip()]
    background = [line for line, label in zip(lines, labels) if label == "benign"]
    assert len(background) >= 0.99 * len(real)
    strip = re.compile(r" \[[^\]]+\]")
    assert Counter(strip.sub("", line, 1) for line in background) <= Counter(strip.sub("", line, 1) for line in real)
    times = [r[1] for r in rows]
    assert times == sorted(times) and times[-1] - times[0] < 6 * 86400
    attacks = sum(label != "benign" for label in labels)
    assert 0.04 <= attacks / len(labels) <= 0.06
    assert not {r[0] for r, l in zip(rows, labels) if l != "benign"} & {line.split(" ", 1)[0] for line in real}


@pytest.mark.parametrize("kwargs", [{"background": "browsing"}, {"attack_share": 1.0}, {"n": 0}])
def test_neutral_bad_arguments_raise_input_error(tmp_path, kwargs):
    with pytest.raises(InputError):
        _neutral(tmp_path, **kwargs)
