"""Behaviour-neutral attack traffic: families that differ only in what they send.

Every attack family (see :mod:`waflens.data.synthetic_families`) draws its pace, session sizes,
endpoints, statuses and user agents from the *same* distributions, independently of the
family, so a clustering that separates them must read the payloads (issue C2). Each
family has 8-12 clients on hosting-provider addresses; a client keeps one user agent
(one tool run) and its sessions are more than 30 minutes apart. ``scanner`` sessions draw
every request's family at random, as real scanners do.

Two backgrounds: ``generated`` (the shop's browsing of :mod:`waflens.data.synthetic_site`) or
``real`` (the benign-heavy shared access logs: elastic's semicomplete.com sample and the
secrepo.com days, each shifted to start at the window start, all else kept verbatim).
Same arguments, same bytes; the real background is read at run time, never copied.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import re
from datetime import datetime, timezone
from operator import itemgetter
from pathlib import Path
from random import Random
from typing import NamedTuple

from waflens.data.errors import InputError
from waflens.data.synthetic import DEFAULT_START, _MONTHS, _time_of_day
from waflens.data.synthetic_campaigns import (CMD_TARGETS, PATH_TARGETS, SESSION_GAP, SQLI_TARGETS, XSS_TARGETS, AttackContext,
                                      CampaignSpec, _lognormal, _pick, schedule_bursts)
from waflens.data.synthetic_clients import HOSTING_OCTETS, AddressBook, reserve
from waflens.data.synthetic_families import FAMILIES, HTTP_PARAMS, load_family_payloads
from waflens.data.synthetic_payloads import ENV_VAR, resolve_payload_dir, resolve_shared_dir
from waflens.data.synthetic_site import benign_traffic

NEUTRAL_CAMPAIGNS = FAMILIES + ("scanner",)
# One spec for every family: pace, session size and timing do not depend on the family.
SHARED_SPEC = CampaignSpec("any", 1.0, (0.02, 0.98), 20, _lognormal(1.2, 0.8), 0.75)
SHARED_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:115.0) Gecko/20100101 Firefox/115.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/109.0.0.0 Safari/537.36",
    "curl/8.5.0", "python-requests/2.32.3", "Go-http-client/1.1",
)
SHARED_TARGETS = {**SQLI_TARGETS, **XSS_TARGETS, **PATH_TARGETS, **CMD_TARGETS}
SHARED_STATUSES = ((0.6, 200, (15000, 40000)), (0.15, 404, (1480, 1481)), (0.1, 403, (199, 200)),
                   (0.1, 500, (612, 613)), (0.05, 400, (226, 227)))
# The benign-heavy shared logs; hackers-access and the scanner_* logs are attack traffic, left out.
REAL_BACKGROUND = ("elastic_apache_logs.log.gz", "secrepo_2018-12-15.log.gz", "secrepo_2021-10-22_to_27.log.gz",
                   "secrepo_2022-12-22.log.gz")
_STAMP = re.compile(r"^(\S+) (\S+ \S+ )\[(\d{2})/(\w{3})/(\d{4}):(\d{2}):(\d{2}):(\d{2}) ([+-]\d{4})\](.*)$")


class NeutralSummary(NamedTuple):
    log_path: Path
    truth_path: Path            # <log>.truth.csv: record,campaign (campaign = family, or benign)
    requests: int
    campaigns: dict[str, int]   # family -> requests, benign under "benign"


def generate_neutral_traffic(out: Path, n_requests: int, seed: int, *, background: str = "generated",
                             days: float = 3.0, attack_share: float = 0.15, payload_dir: Path | None = None,
                             shared_dir: Path | None = None) -> NeutralSummary:
    """Write behaviour-neutral attack families over a benign background.

    ``generated``: ``n_requests`` lines over ``days``, about ``attack_share`` of them attacks.
    ``real``: the shared access logs (``shared_dir``/access_logs) plus attacks making up
    ``attack_share`` of the whole; ``n_requests`` and ``days`` are then ignored.
    ``shared_dir`` (default: ``$WAFLENS_SHARED_DATASETS``, else ``../shared/datasets``) gives the payload
    lists (unless ``payload_dir`` or ``$WAFLENS_PAYLOAD_DIR`` says otherwise; else the bundled samples)
    and HttpParamsDataset's values (skipped when absent)."""
    if background not in ("generated", "real"):
        raise InputError(f"background must be 'generated' or 'real', got {background!r}")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise InputError(f"seed must be an integer, got {seed!r}")
    if not isinstance(attack_share, (int, float)) or not 0.0 < attack_share < 1.0:
        raise InputError(f"attack_share must be a fraction in (0, 1), got {attack_share!r}")
    shared_dir = resolve_shared_dir(shared_dir)
    if payload_dir is None and not os.environ.get(ENV_VAR) and (shared_dir / "payloads").is_dir():
        payload_dir = shared_dir / "payloads"
    payload_dir = resolve_payload_dir(payload_dir)
    payloads = load_family_payloads(payload_dir, Random(f"waflens-neutral:{seed}:payloads"), shared_dir / HTTP_PARAMS)
    book = AddressBook()
    origin = DEFAULT_START.timestamp()
    if background == "real":
        lines, duration = read_real_background(shared_dir / "access_logs")
        reserve(book, dict.fromkeys(line.split(" ", 1)[0] for _, line in lines))
        attack_total = max(len(NEUTRAL_CAMPAIGNS), round(len(lines) * attack_share / (1.0 - attack_share)))
    else:
        if isinstance(n_requests, bool) or not isinstance(n_requests, int) or n_requests < 1:
            raise InputError(f"n_requests must be a positive integer, got {n_requests!r}")
        if not isinstance(days, (int, float)) or not 0 < days <= 3660:
            raise InputError(f"days must be a number of days in (0, 3660], got {days!r}")
        duration = days * 86400.0
        attack_total = min(n_requests, round(n_requests * attack_share))
    events, info = neutral_attacks(seed, book, attack_total, duration, payloads)
    rows = [(t, _format(ip, t, origin, request, status, size, referer, agent), label)
            for t, ip, request, status, size, referer, agent, label in events]
    if background == "real":
        rows += [(t, _restamp(line, t, origin), 0) for t, line in lines]
    else:
        rows += [(e[0], _format(e[1], e[0], origin, *e[2:7]), 0) for e in benign_traffic(
            Random(f"waflens-neutral:{seed}:benign"), book, n_requests - len(events), duration, origin)]
    rows.sort(key=itemgetter(0))
    out = Path(out)
    truth = out.with_name(out.name + ".truth.csv")
    names = ("benign",) + NEUTRAL_CAMPAIGNS
    counts = dict.fromkeys(names, 0)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "w", encoding="ascii", newline="\n") as log, open(truth, "w", encoding="ascii", newline="\n") as tr:
            tr.write("record,campaign\n")
            for record, (_, line, label) in enumerate(rows, start=1):
                log.write(line + "\n")
                tr.write(f"{record},{names[label]}\n")
                counts[names[label]] += 1
        out.with_name(out.name + ".campaigns.json").write_text(json.dumps({
            "schema_version": 1, "generator": "waflens.data.synthetic_neutral.generate_neutral_traffic", "seed": seed,
            "background": background, "requests": len(rows), "attack_share": attack_share,
            "session_gap_seconds": SESSION_GAP, "campaigns": info}, indent=1) + "\n", encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot write synthetic traffic to {out} ({exc.strerror or exc}); "
                         "choose a writable path") from None
    return NeutralSummary(out, truth, len(rows), counts)


def neutral_attacks(seed: int, book: AddressBook, total: int, duration: float,
                    payloads: dict) -> tuple[list[tuple], dict[str, dict]]:
    """Events (t, ip, request, status, size, referer, agent, label 1..) of every family, equal budgets."""
    ctx = AttackContext({})
    names = list(SHARED_TARGETS)
    events: list[tuple] = []
    info: dict[str, dict] = {}
    budgets = [total // len(NEUTRAL_CAMPAIGNS) + (i < total % len(NEUTRAL_CAMPAIGNS))
               for i in range(len(NEUTRAL_CAMPAIGNS))]
    for label, (family, budget) in enumerate(zip(NEUTRAL_CAMPAIGNS, budgets), start=1):
        rng = Random(f"waflens-neutral:{seed}:{family}")
        clients = [(book.ipv4(rng, HOSTING_OCTETS), rng.choice(SHARED_AGENTS)) for _ in range(rng.randint(8, 12))]
        bursts = schedule_bursts(rng, SHARED_SPEC, budget, SHARED_SPEC.window[0] * duration,
                                 SHARED_SPEC.window[1] * duration, clients)
        made = 0
        for (ip, agent), times in bursts:
            targets = rng.sample(names, rng.randint(1, 2))
            for t in times:
                head, original, tail = SHARED_TARGETS[rng.choice(targets)](rng)
                source = payloads[rng.choice(FAMILIES)] if family == "scanner" else payloads[family]
                payload = source.draw(rng)
                glue = not payload[:1].isalnum() and rng.random() < 0.3
                value = (original if glue else "") + ctx.encoded(payload, "%20" if rng.random() < 0.5 else "+")
                code, size = _pick(rng, SHARED_STATUSES)
                events.append((t, ip, f"GET {head}{value}{tail} HTTP/1.1", code, size, "-", agent, label))
                made += 1
        used = list(dict.fromkeys(client for client, _ in bursts))
        info[family] = {"requests": made, "sessions": len(bursts), "clients": [ip for ip, _ in used],
                        "user_agents": list(dict.fromkeys(a for _, a in used)),
                        "payload_sources": sorted({n for f in (FAMILIES if family == "scanner" else (family,))
                                                   for n in payloads[f].names})}
    return events, info


def read_real_background(directory: Path) -> tuple[list[tuple[float, str]], float]:
    """(seconds from the window start, line) of the benign shared logs, each log shifted to start at 0,
    and the window's length (the longest log's span, at least a day). Lines without a timestamp are dropped."""
    lines: list[tuple[float, str]] = []
    span = 86400.0
    for name in REAL_BACKGROUND:
        path = directory / name
        try:
            with gzip.open(path, "rt", encoding="latin-1", newline="\n") as handle:
                text = handle.read()
        except OSError as exc:
            raise InputError(f"real background log {path} cannot be read ({exc.strerror or exc}); point shared_dir "
                             "at the shared datasets or use background='generated'") from None
        stamped = []
        for line in text.split("\n"):
            m = _STAMP.match(line.rstrip("\r").rstrip(" "))
            if m:
                stamped.append((_epoch(m), line.rstrip("\r").rstrip(" ")))
        if stamped:
            first = min(t for t, _ in stamped)
            lines += [(t - first, line) for t, line in stamped]
            span = max(span, max(t for t, _ in stamped) - first + 1.0)
    if not lines:
        raise InputError(f"no timestamped lines in the real background logs under {directory}")
    return lines, span


def _epoch(m: re.Match) -> float:
    when = datetime(int(m[5]), _MONTHS.index(m[4]) + 1, int(m[3]), int(m[6]), int(m[7]), int(m[8]), tzinfo=timezone.utc)
    zone = int(m[9])
    return when.timestamp() - (abs(zone) // 100 * 3600 + abs(zone) % 100 * 60) * (1 if zone >= 0 else -1)


_TIME_OF_DAY = _time_of_day()


def _stamp(t: float, origin: float) -> str:
    day, second = divmod(math.floor(origin + t), 86400)
    d = datetime.fromtimestamp(day * 86400, tz=timezone.utc)
    return f"[{d.day:02d}/{_MONTHS[d.month - 1]}/{d.year}:{_TIME_OF_DAY[second]}]"


def _format(ip: str, t: float, origin: float, request: str, status: int, size: int, referer: str, agent: str) -> str:
    return f'{ip} - - {_stamp(t, origin)} "{request}" {status} {size or "-"} "{referer}" "{agent}"'


def _restamp(line: str, t: float, origin: float) -> str:
    m = _STAMP.match(line)
    return f"{m[1]} {m[2]}{_stamp(t, origin)}{m[10]}"
