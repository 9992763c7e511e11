"""Deterministic synthetic web traffic with ground truth: the demo data and the benchmark truth.

``generate_traffic`` writes an Apache combined log of a shop's benign visitors and eight
attack campaigns, ``<log>.truth.csv`` (which campaign each line belongs to) and
``<log>.campaigns.json`` (clients, agents, endpoints and time span of each campaign).
The same arguments give the same bytes: every random choice comes from a
``random.Random`` seeded with a string made of ``seed`` and the part of the traffic it
drives (string seeds are hashed with SHA-512, not ``hash()``, so ``PYTHONHASHSEED``
does not matter), never from global state or the clock; no set is ever iterated.
Each campaign has its own stream, so changing one campaign does not move the others.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone
from operator import itemgetter
from pathlib import Path
from random import Random
from typing import NamedTuple

from waflens.data.errors import InputError
from waflens.data.synthetic_campaigns import CAMPAIGNS, SESSION_GAP, allocate_budgets, attack_traffic
from waflens.data.synthetic_clients import AddressBook
from waflens.data.synthetic_payloads import load_payloads, resolve_payload_dir
from waflens.data.synthetic_site import SITE, benign_traffic

__all__ = ["CAMPAIGNS", "DEFAULT_START", "GenerationSummary", "generate_traffic"]

DEFAULT_START = datetime(2026, 11, 1, tzinfo=timezone.utc)
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_WRITE_CHUNK = 20_000


class GenerationSummary(NamedTuple):
    log_path: Path
    truth_path: Path            # <log>.truth.csv
    requests: int               # lines written
    campaigns: dict[str, int]   # campaign name -> requests (benign under "benign")
    start: datetime             # UTC, first timestamp
    end: datetime               # UTC, last timestamp


def generate_traffic(out: Path, n_requests: int, seed: int, *, start: datetime | None = None,
                     days: float = 3.0, attack_share: float = 0.15,
                     payload_dir: Path | None = None) -> GenerationSummary:
    """Write ``n_requests`` lines of traffic over ``days`` from ``start`` (default 2026-11-01 UTC).

    About ``attack_share`` of the lines belong to the campaigns in :data:`CAMPAIGNS`.
    Payloads come from ``payload_dir``, else ``$WAFLENS_PAYLOAD_DIR``, else
    ``../shared/datasets/payloads`` beside the repository, else ``data/payload_samples``.
    """
    _check_arguments(n_requests, seed, days, attack_share, start)
    origin = DEFAULT_START if start is None else start
    origin = origin.replace(tzinfo=timezone.utc) if origin.tzinfo is None else origin.astimezone(timezone.utc)
    duration = days * 86400.0
    out = Path(out)
    payloads = load_payloads(resolve_payload_dir(payload_dir), Random(f"waflens-synthetic:{seed}:payloads"))

    book = AddressBook()
    attack_total = min(n_requests, round(n_requests * attack_share))
    budgets = allocate_budgets(attack_total, duration)
    events, info = attack_traffic(seed, book, budgets, duration, payloads)  # first: campaigns keep their /24s
    events += benign_traffic(Random(f"waflens-synthetic:{seed}:benign"), book, n_requests - len(events),
                             duration, origin.timestamp())
    events.sort(key=itemgetter(0))

    counts = {"benign": 0, **{name: 0 for name in CAMPAIGNS}}
    names = ("benign",) + CAMPAIGNS
    for event in events:
        counts[names[event[7]]] += 1
    truth_path = out.with_name(out.name + ".truth.csv")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        first_last = _write(out, truth_path, events, origin.timestamp())
        _write_campaigns(out.with_name(out.name + ".campaigns.json"), info, first_last, counts, seed=seed,
                         origin=origin, days=days, attack_share=attack_share, n_requests=n_requests)
    except OSError as exc:
        raise InputError(f"cannot write synthetic traffic to {out} ({exc.strerror or exc}); "
                         f"choose a writable path") from None
    epoch = origin.timestamp()
    return GenerationSummary(out, truth_path, len(events), counts,
                             _utc(math.floor(epoch + events[0][0])), _utc(math.floor(epoch + events[-1][0])))


def _check_arguments(n_requests, seed, days, attack_share, start) -> None:
    if isinstance(n_requests, bool) or not isinstance(n_requests, int) or n_requests < 1:
        raise InputError(f"n_requests must be a positive integer, got {n_requests!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InputError(f"seed must be an integer, got {seed!r}")
    if not isinstance(days, (int, float)) or not math.isfinite(days) or not 0 < days <= 3660:
        raise InputError(f"days must be a number of days in (0, 3660], got {days!r}")
    if not isinstance(attack_share, (int, float)) or not 0.0 <= attack_share <= 1.0:
        raise InputError(f"attack_share must be a fraction in [0, 1], got {attack_share!r}")
    if start is not None and not isinstance(start, datetime):
        raise InputError(f"start must be a datetime, got {type(start).__name__}")


def _utc(second: float) -> datetime:
    return datetime.fromtimestamp(second, tz=timezone.utc)


def _time_of_day() -> list[str]:
    return [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d} +0000" for s in range(86400)]


def _write(log_path: Path, truth_path: Path, events: list[tuple], epoch: float) -> dict[int, list[float]]:
    """Both files in one pass; returns first and last time (epoch seconds) per label."""
    names = ("benign",) + CAMPAIGNS
    time_of_day = _time_of_day()
    day_prefix: dict[int, str] = {}
    first_last: dict[int, list[float]] = {}
    with open(log_path, "w", encoding="ascii", newline="\n", buffering=1 << 20) as log, \
            open(truth_path, "w", encoding="ascii", newline="\n", buffering=1 << 20) as truth:
        truth.write("record,campaign\n")
        lines, rows = [], []
        for record, (t, ip, request, status, size, referer, agent, label) in enumerate(events, start=1):
            day, second = divmod(math.floor(epoch + t), 86400)
            prefix = day_prefix.get(day)
            if prefix is None:
                d = _utc(day * 86400)
                prefix = day_prefix[day] = f"{d.day:02d}/{_MONTHS[d.month - 1]}/{d.year}:"
            lines.append(f'{ip} - - [{prefix}{time_of_day[second]}] "{request}" {status} {size or "-"} '
                         f'"{referer}" "{agent}"\n')
            rows.append(f"{record},{names[label]}\n")
            if label:
                span = first_last.get(label)
                if span is None:
                    first_last[label] = [epoch + t, epoch + t]
                else:
                    span[1] = epoch + t
            if len(lines) >= _WRITE_CHUNK:
                log.write("".join(lines))
                truth.write("".join(rows))
                lines, rows = [], []
        log.write("".join(lines))
        truth.write("".join(rows))
    return first_last


def _iso(epoch_second: float) -> str:
    return _utc(math.floor(epoch_second)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _write_campaigns(path: Path, info: dict[str, dict], first_last: dict[int, list[float]], counts: dict[str, int],
                     *, seed: int, origin: datetime, days: float, attack_share: float, n_requests: int) -> None:
    epoch, duration = origin.timestamp(), days * 86400.0
    campaigns = {}
    for label, name in enumerate(CAMPAIGNS, start=1):
        if label not in first_last:
            continue
        first, last = first_last[label]
        campaigns[name] = {"family": info[name]["family"], "requests": counts[name],
                           "start": _iso(first), "end": _iso(last),
                           "start_fraction": round((first - epoch) / duration, 4),
                           "end_fraction": round((last - epoch) / duration, 4),
                           "planned_sessions": info[name]["bursts"], **{
                               k: info[name][k] for k in ("clients", "user_agents", "endpoints", "payload_files")}}
    document = {"schema_version": 1, "generator": "waflens.data.synthetic.generate_traffic", "seed": seed,
                "requests": n_requests, "benign_requests": counts["benign"], "attack_share": attack_share,
                "window": {"start": _iso(epoch), "end": _iso(epoch + duration), "days": days},
                "site": SITE, "session_gap_seconds": SESSION_GAP, "campaigns": campaigns}
    path.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
