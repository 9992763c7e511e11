"""Attack campaigns of the synthetic traffic, each with its own clients, rate and time span.

A campaign is a number of bursts (sessions), each from one of its clients. A client's
bursts sit in separate time slots with more than 30 minutes between them, so a
30-minute sessionizer sees every burst as one session; at least 16 bursts (where the
window has room for them) give the clustering benchmark enough sessions per campaign.
Injection campaigns put one payload per request into one query value of a real
endpoint of the shop.
"""

from __future__ import annotations

import math
from random import Random
from typing import Callable, NamedTuple

from waflens.data.synthetic_clients import HOSTING_OCTETS, AddressBook
from waflens.data.synthetic_payloads import apache_escape, encode_query_value
from waflens.data.synthetic_site import (CATEGORIES, HELP_TOPICS, MISSING_PRODUCTS, PRODUCT_RANGE, PRODUCTS, SITE,
                                 SORTS, popular_product, product_exists, product_page_size, search_terms,
                                 tracking_number)

CAMPAIGNS = ("sqli_scan", "xss_probe", "path_traversal", "cmd_injection", "credential_stuffing",
             "vuln_scanner", "scraper", "slow_bot")
SESSION_GAP = 1800.0


class CampaignSpec(NamedTuple):
    family: str
    weight: float               # share of the attack requests
    window: tuple[float, float]  # first and last burst, as fractions of the traffic window
    burst_size: float           # mean requests per burst (session)
    gap: Callable[[Random], float]  # seconds between requests inside a burst
    min_slot_hours: float       # a client bursts at most once per slot


def _lognormal(median: float, sigma: float) -> Callable[[Random], float]:
    mu = math.log(median)
    return lambda rng: rng.lognormvariate(mu, sigma)


SPECS = {
    "sqli_scan": CampaignSpec("sqli", 0.15, (0.08, 0.42), 40, _lognormal(0.6, 0.6), 0.75),
    "xss_probe": CampaignSpec("xss", 0.12, (0.22, 0.58), 25, _lognormal(2.5, 0.7), 0.75),
    "path_traversal": CampaignSpec("path_traversal", 0.12, (0.80, 0.99), 35, _lognormal(0.9, 0.6), 0.75),
    "cmd_injection": CampaignSpec("cmd_injection", 0.09, (0.85, 0.995), 20, _lognormal(1.5, 0.6), 0.75),
    "credential_stuffing": CampaignSpec("credential_stuffing", 0.16, (0.50, 0.78), 5, _lognormal(6.0, 0.7), 0.75),
    "vuln_scanner": CampaignSpec("scanner", 0.14, (0.03, 0.60), 60, _lognormal(0.35, 0.5), 0.75),
    "scraper": CampaignSpec("scraping", 0.15, (0.36, 0.70), 60, _lognormal(1.2, 0.4), 0.75),
    "slow_bot": CampaignSpec("credential_stuffing", 0.07, (0.005, 0.995), 1.4, lambda rng: rng.uniform(1.0, 4.0), 0.75),
}
SLOW_BOT_PER_HOUR = 5.0

AGENTS = {
    "sqli_scan": "sqlmap/1.8.11#stable (https://sqlmap.org)",
    "xss_probe": "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:115.0) Gecko/20100101 Firefox/115.0",
    "path_traversal": "curl/8.5.0",
    "cmd_injection": "Go-http-client/1.1",
    "vuln_scanner": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                    "Chrome/109.0.0.0 Safari/537.36",
    "scraper": "python-requests/2.32.3",
    "slow_bot": "Mozilla/5.0 (Windows NT 6.1; Win64; x64; rv:61.0) Gecko/20100101 Firefox/61.0",
}
_WEBKIT = "AppleWebKit/537.36 (KHTML, like Gecko)"
# Credential-stuffing tools rotate through slightly stale browser agents, one per proxy.
STUFFING_AGENTS = (
    f"Mozilla/5.0 (Windows NT 10.0; Win64; x64) {_WEBKIT} Chrome/124.0.0.0 Safari/537.36",
    f"Mozilla/5.0 (Windows NT 10.0; Win64; x64) {_WEBKIT} Chrome/120.0.0.0 Safari/537.36",
    f"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) {_WEBKIT} Chrome/122.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 "
    "Mobile/15E148 Safari/604.1",
    f"Mozilla/5.0 (Linux; Android 10; K) {_WEBKIT} Chrome/125.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
)

# Injection targets: label -> rng -> (request up to the value, benign original value, rest of the query).
Target = Callable[[Random], tuple[str, str, str]]
SQLI_TARGETS: dict[str, Target] = {
    "GET /search?q=": lambda rng: ("/search?q=", search_terms(rng), "&page=1"),
    "GET /search?page=": lambda rng: (f"/search?q={search_terms(rng)}&page=", "2", ""),
    "GET /category/<name>?sort=": lambda rng: (f"/category/{rng.choice(CATEGORIES)}?sort=", rng.choice(SORTS),
                                               "&page=1"),
    "GET /api/v1/reviews?product_id=": lambda rng: ("/api/v1/reviews?product_id=", str(popular_product(rng)),
                                                    "&page=1"),
    "GET /product/<id>?variant=": lambda rng: (f"/product/{popular_product(rng)}?variant=", "1", ""),
}
XSS_TARGETS: dict[str, Target] = {
    "GET /search?q=": lambda rng: ("/search?q=", search_terms(rng), "&page=1"),
    "GET /blog?tag=": lambda rng: ("/blog?tag=", "guides", ""),
    "GET /login?next=": lambda rng: ("/login?next=", "%2Faccount", ""),
    "GET /help?topic=": lambda rng: ("/help?topic=", rng.choice(HELP_TOPICS), ""),
}
PATH_TARGETS: dict[str, Target] = {
    "GET /account/invoice?file=": lambda rng: ("/account/invoice?file=", f"invoice-{rng.randrange(10000, 99999)}.pdf",
                                               ""),
    "GET /help?topic=": lambda rng: ("/help?topic=", rng.choice(HELP_TOPICS), ""),
    "GET /catalog/download?file=": lambda rng: ("/catalog/download?file=", "catalog-2026-autumn.pdf", ""),
}
CMD_TARGETS: dict[str, Target] = {
    "GET /api/v1/shipping/track?tracking=": lambda rng: ("/api/v1/shipping/track?carrier=ups&tracking=",
                                                         tracking_number(rng), ""),
    "GET /api/v1/stores/nearby?zip=": lambda rng: ("/api/v1/stores/nearby?zip=", str(rng.randrange(10000, 99999)),
                                                   "&radius=25"),
}
# Probe paths of a vulnerability scanner, with the shop's answer (status, bytes).
_NOT_FOUND, _FORBIDDEN = (404, 1480), (403, 199)
PROBES = tuple((p, _FORBIDDEN) for p in (
    "/.env", "/.git/config", "/.git/HEAD", "/server-status", "/server-info", "/.htaccess", "/.htpasswd")) + tuple(
    (p, _NOT_FOUND) for p in (
        "/wp-login.php", "/wp-admin/", "/wp-content/plugins/revslider/readme.txt", "/xmlrpc.php", "/phpmyadmin/",
        "/phpMyAdmin/index.php", "/pma/", "/admin/", "/administrator/", "/config.php.bak", "/index.php.bak",
        "/wp-config.php.bak", "/web.config.bak", "/login.bak", "/backup.zip", "/backup.tar.gz", "/db.sql",
        "/dump.sql", "/site.tar.gz", "/.DS_Store", "/.svn/entries", "/phpinfo.php", "/info.php", "/test.php",
        "/cgi-bin/test-cgi", "/cgi-bin/printenv", "/cgi-bin/php", "/cgi-bin/luci",
        "/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php", "/actuator/env", "/actuator/health",
        "/solr/admin/info/system", "/manager/html", "/console/", "/jenkins/login", "/.aws/credentials",
        "/config.json", "/api/swagger.json", "/v2/api-docs", "/graphql", "/owa/auth/logon.aspx", "/remote/login",
        "/HNAP1/", "/telescope/requests", "/_profiler/phpinfo", "/storage/logs/laravel.log", "/.vscode/sftp.json",
        "/containers/json", "/crossdomain.xml")) + (
    ("/admin", (301, 237)), ("/.well-known/security.txt", (200, 412)), ("/robots.txt", (200, 312)),
    ("/login", (200, 12044)), ("/", (200, 41872)))
SHELLSHOCK = ("() { :;}; echo; /bin/bash -c 'cat /etc/passwd'",
              '() { :;}; echo "NS:" $(/bin/sh -c "expr 268409241 - 2")')


def allocate_budgets(attack_requests: int, duration: float) -> dict[str, int]:
    """Requests per campaign summing to ``attack_requests``; slow_bot is capped by its rate."""
    budgets = dict(zip(CAMPAIGNS, _largest_remainder(attack_requests, [SPECS[n].weight for n in CAMPAIGNS])))
    cap = max(1, int(duration / 3600.0 * SLOW_BOT_PER_HOUR))
    if budgets["slow_bot"] > cap:
        others = [n for n in CAMPAIGNS if n != "slow_bot"]
        extra = _largest_remainder(budgets["slow_bot"] - cap, [SPECS[n].weight for n in others])
        budgets.update({n: budgets[n] + e for n, e in zip(others, extra)}, slow_bot=cap)
    return budgets


def _largest_remainder(total: int, weights: list[float]) -> list[int]:
    """Integers proportional to ``weights`` summing to ``total`` (ties go to the earlier weight)."""
    scale = total / sum(weights)
    quotas = [w * scale for w in weights]
    counts = [int(q) for q in quotas]
    for i in sorted(range(len(weights)), key=lambda i: (counts[i] - quotas[i], i))[:total - sum(counts)]:
        counts[i] += 1
    return counts


def _split(rng: Random, total: int, parts: int) -> list[int]:
    """``parts`` sizes >= 1 summing to ``total``, varying around the mean."""
    weights = [rng.lognormvariate(0.0, 0.5) for _ in range(parts)]
    return [1 + share for share in _largest_remainder(total - parts, weights)]


def schedule_bursts(rng: Random, spec: CampaignSpec, budget: int, t0: float, t1: float,
                    clients: list[tuple[str, str]]) -> list[tuple[tuple[str, str], list[float]]]:
    """Bursts as (client, request times); a client's bursts are more than 30 minutes apart."""
    if budget <= 0:
        return []
    span = max(t1 - t0, 1.0)
    per_client = max(1, int(span // (spec.min_slot_hours * 3600.0)))
    k = max(round(budget / spec.burst_size), min(16, budget))
    k = max(1, min(k, budget, per_client * len(clients)))
    sizes = _split(rng, budget, k)
    order = rng.sample(clients, len(clients))
    bursts = []
    for j, client in enumerate(order):
        mine = sizes[j::len(order)]
        if not mine:
            continue
        slot = span / len(mine)
        for s, size in enumerate(mine):
            gaps = [spec.gap(rng) for _ in range(size - 1)]
            duration = sum(gaps)
            room = slot if s == len(mine) - 1 else slot - SESSION_GAP - 60.0
            room = room if room > 0 else slot * 0.5  # window too short to keep sessions apart
            if duration > room:
                gaps = [g * room / duration for g in gaps]
                duration = room
            t = t0 + s * slot + rng.random() * (room - duration)
            times = [t]
            for g in gaps:
                t += g
                times.append(t)
            bursts.append((client, times))
    return bursts


class AttackContext:
    """What campaign builders share: payloads, and the encodings of each payload, made once."""

    def __init__(self, payloads: dict[str, list[str]]):
        self.payloads = payloads
        self._encoded: dict[tuple[str, str], str] = {}
        self._escaped: dict[str, str] = {}

    def encoded(self, payload: str, space: str) -> str:
        key = (payload, space)
        value = self._encoded.get(key)
        if value is None:
            value = self._encoded[key] = encode_query_value(payload, space)
        return value

    def escaped(self, text: str) -> str:
        value = self._escaped.get(text)
        if value is None:
            value = self._escaped[text] = apache_escape(text)
        return value


def _injection(ctx: AttackContext, rng: Random, bursts, label: int, targets: dict[str, Target], family: list[str],
               space: str, keep_original: float, status: Callable[[Random], tuple[int, int]],
               raw_referer: float = 0.0) -> tuple[list[tuple], list[str]]:
    events, used = [], {}
    names = list(targets)
    for (ip, agent), times in bursts:
        name = rng.choice(names)
        used[name] = None
        head, original, tail = targets[name](rng)
        for t in times:
            payload = rng.choice(family)
            # payloads that open with a quote, space or separator are appended to the real value
            glue = not payload[:1].isalnum() and rng.random() < keep_original
            value = (original if glue else "") + ctx.encoded(payload, space)
            code, size = status(rng)
            referer = ctx.escaped(payload) if rng.random() < raw_referer else "-"
            events.append((t, ip, f"GET {head}{value}{tail} HTTP/1.1", code, size, referer, agent, label))
    return events, list(used)


def _pick(rng: Random, table: tuple[tuple[float, int, tuple[int, int]], ...]) -> tuple[int, int]:
    x = rng.random()
    for p, code, (lo, hi) in table:
        if x < p:
            return code, rng.randrange(lo, hi)
        x -= p
    return table[-1][1], rng.randrange(*table[-1][2])


def _clients(name: str, rng: Random, book: AddressBook, budget: int) -> list[tuple[str, str]]:
    """Client (ip, agent) pairs: most campaigns come from a few hosts of one /24."""
    if name == "credential_stuffing":
        count = min(3000, max(12, budget // 8))
        proxies = [ip for _ in range(3) for ip in book.network(rng, min(250, max(2, count // 10)))]
        ips = [proxies.pop(0) if i % 3 == 0 and proxies else book.ipv6(rng) if i % 10 == 1 else book.ipv4(rng)
               for i in range(count)]
        return [(ip, rng.choice(STUFFING_AGENTS)) for ip in ips]
    if name == "slow_bot":
        ips = [book.ipv4(rng) for _ in range(6)]
    elif name in ("xss_probe", "cmd_injection"):
        ips = book.network(rng, 2) + [book.ipv4(rng, HOSTING_OCTETS)]
    else:
        ips = book.network(rng, 4 if name == "scraper" else 3)
    return [(ip, AGENTS[name]) for ip in ips]


def _credential_stuffing(rng: Random, bursts, label: int) -> list[tuple]:
    events = []
    for (ip, agent), times in bursts:
        referer = f"{SITE}/login" if rng.random() < 0.6 else "-"
        first = rng.random() < 0.3  # some tools load the form first
        for i, t in enumerate(times):
            if first and i == 0:
                events.append((t, ip, "GET /login HTTP/1.1", 200, 12044, referer, agent, label))
                continue
            ok = rng.random() < 0.04
            events.append((t, ip, "POST /login HTTP/1.1", 200 if ok else 401, 52 if ok else 38, referer, agent, label))
    return events


def _vuln_scanner(ctx: AttackContext, rng: Random, bursts, label: int) -> list[tuple]:
    events = []
    families = [ctx.payloads["sqli"], ctx.payloads["xss"], ctx.payloads["path_traversal"] + ctx.payloads["lfi"]]
    targets = [SQLI_TARGETS, XSS_TARGETS, PATH_TARGETS]
    for (ip, agent), times in bursts:
        probes = rng.sample(PROBES, len(PROBES))
        for i, t in enumerate(times):
            if rng.random() < 0.1:
                f = rng.randrange(3)
                head, original, tail = rng.choice(list(targets[f].values()))(rng)
                value = ctx.encoded(rng.choice(families[f]), "%20")
                code, size = _pick(rng, ((0.6, 404, (1480, 1481)), (0.3, 200, (15000, 40000)), (0.1, 500, (612, 613))))
                events.append((t, ip, f"GET {head}{value}{tail} HTTP/1.1", code, size, "-", agent, label))
                continue
            path, (code, size) = probes[i % len(probes)]
            referer = ctx.escaped(rng.choice(SHELLSHOCK)) if path.startswith("/cgi-bin/") else "-"
            method = "HEAD" if rng.random() < 0.05 else "GET"
            events.append((t, ip, f"{method} {path} HTTP/1.1", code, 0 if method == "HEAD" else size,
                           referer, agent, label))
    return events


def _scraper(rng: Random, bursts, label: int) -> list[tuple]:
    events = []
    pid = rng.choice(PRODUCTS)
    for (ip, agent), times in sorted(bursts, key=lambda b: b[1][0]):  # the crawl resumes where it stopped
        for t in times:
            pid = pid + 1 if pid + 1 < PRODUCT_RANGE.stop else PRODUCT_RANGE.start
            if rng.random() < 0.005:
                code, size = 429, 162
            elif product_exists(pid):
                code, size = 200, product_page_size(pid, rng)
            else:
                code, size = 404, 1480
            events.append((t, ip, f"GET /product/{pid} HTTP/1.1", code, size, "-", agent, label))
    return events


_SLOW_SINGLE = (("GET /wp-login.php", 404, 1480), ("POST /xmlrpc.php", 404, 1480), ("POST /login", 401, 38),
                ("GET /xmlrpc.php", 404, 1480))
_SLOW_PAIRS = ((("GET /wp-login.php", 404, 1480), ("POST /wp-login.php", 404, 1480)),
               (("GET /login", 200, 12044), ("POST /login", 401, 38)))


def _slow_bot(rng: Random, bursts, label: int) -> list[tuple]:
    events = []
    for (ip, agent), times in bursts:
        steps = (rng.choice(_SLOW_SINGLE),) if len(times) == 1 else rng.choice(_SLOW_PAIRS)
        for i, t in enumerate(times):
            request, code, size = steps[min(i, len(steps) - 1)]
            events.append((t, ip, f"{request} HTTP/1.1", code, size, "-", agent, label))
    return events


_ENDPOINTS = {
    "credential_stuffing": ["GET /login", "POST /login"],
    "vuln_scanner": [f"GET {p}" for p, _ in PROBES] + list({**SQLI_TARGETS, **XSS_TARGETS, **PATH_TARGETS}),
    "scraper": ["GET /product/<id>"],
    "slow_bot": ["GET /wp-login.php", "POST /wp-login.php", "GET /xmlrpc.php", "POST /xmlrpc.php",
                 "GET /login", "POST /login"],
}
_FAMILY_FILES = {"sqli_scan": ["sqli.txt"], "xss_probe": ["xss.txt"],
                 "path_traversal": ["path_traversal.txt", "lfi.txt"], "cmd_injection": ["cmd_injection.txt"],
                 "vuln_scanner": ["sqli.txt", "xss.txt", "path_traversal.txt", "lfi.txt"]}


def attack_traffic(seed: int, book: AddressBook, budgets: dict[str, int], duration: float,
                   payloads: dict[str, list[str]]) -> tuple[list[tuple], dict[str, dict]]:
    """Events of every campaign (label = 1 + index in CAMPAIGNS) and what each campaign is made of."""
    ctx = AttackContext(payloads)
    events: list[tuple] = []
    info: dict[str, dict] = {}
    for label, name in enumerate(CAMPAIGNS, start=1):
        spec, budget = SPECS[name], budgets.get(name, 0)
        rng = Random(f"waflens-synthetic:{seed}:{name}")
        clients = _clients(name, rng, book, budget)
        start = min(max(spec.window[0] + rng.uniform(-0.02, 0.02), 0.0), spec.window[1] - 0.05)
        bursts = schedule_bursts(rng, spec, budget, start * duration, spec.window[1] * duration, clients)
        endpoints = _ENDPOINTS.get(name)
        if name == "sqli_scan":
            made, endpoints = _injection(ctx, rng, bursts, label, SQLI_TARGETS, payloads["sqli"], "%20", 0.5,
                                         lambda r: _pick(r, ((0.8, 200, (18000, 45000)), (0.15, 500, (612, 613)),
                                                             (0.05, 403, (199, 200)))))
        elif name == "xss_probe":
            made, endpoints = _injection(ctx, rng, bursts, label, XSS_TARGETS, payloads["xss"], "+", 0.3,
                                         lambda r: _pick(r, ((0.88, 200, (14000, 40000)), (0.06, 400, (226, 227)),
                                                             (0.06, 403, (199, 200)))), raw_referer=0.15)
        elif name == "path_traversal":
            made, endpoints = _injection(ctx, rng, bursts, label, PATH_TARGETS,
                                         payloads["path_traversal"] + payloads["lfi"], "%20", 0.0,
                                         lambda r: _pick(r, ((0.45, 404, (1480, 1481)), (0.25, 400, (226, 227)),
                                                             (0.15, 403, (199, 200)), (0.1, 200, (1900, 2400)),
                                                             (0.05, 500, (612, 613)))))
        elif name == "cmd_injection":
            made, endpoints = _injection(ctx, rng, bursts, label, CMD_TARGETS, payloads["cmd_injection"], "+", 0.7,
                                         lambda r: _pick(r, ((0.55, 200, (90, 400)), (0.25, 400, (64, 65)),
                                                             (0.15, 500, (612, 613)), (0.05, 403, (199, 200)))))
        elif name == "credential_stuffing":
            made = _credential_stuffing(rng, bursts, label)
        elif name == "vuln_scanner":
            made = _vuln_scanner(ctx, rng, bursts, label)
        elif name == "scraper":
            made = _scraper(rng, bursts, label)
        else:
            made = _slow_bot(rng, bursts, label)
        events.extend(made)
        used = list(dict.fromkeys(client for client, _ in bursts))
        info[name] = {"family": spec.family, "requests": len(made), "bursts": len(bursts),
                      "clients": list(dict.fromkeys(ip for ip, _ in used)),
                      "user_agents": list(dict.fromkeys(agent for _, agent in used)),
                      "endpoints": endpoints, "payload_files": _FAMILY_FILES.get(name, [])}
    return events, info
