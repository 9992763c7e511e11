"""The synthetic shop and its benign visitors: pages, assets, sessions, crawlers.

The site is an outdoor-gear shop. Its endpoints (with the query parameters benign
visitors use) are the ones the attack campaigns later inject into, so attacks hide
among real URLs. Sizes of pages and assets are functions of the URL, as on a real
site; only dynamic pages vary by a few hundred bytes.

An event is a tuple ``(seconds, ip, request, status, bytes, referer, agent, label)``;
``bytes`` 0 is logged as ``-`` and ``label`` 0 means benign.
"""

from __future__ import annotations

import math
from itertools import accumulate
from random import Random

from waflens.data.synthetic_clients import BINGBOT_IPS, BROWSER_AGENTS, CRAWLER_AGENTS, GOOGLEBOT_IPS, AddressBook

SITE = "https://www.northwind-outfitters.example"
CATEGORIES = ("jackets", "boots", "backpacks", "tents", "sleeping-bags", "socks", "base-layers", "gloves",
              "hats", "trekking-poles", "stoves", "headlamps", "water-bottles", "trail-running")
SEARCH_WORDS = ("waterproof", "jacket", "wool", "socks", "merino", "hiking", "boots", "tent", "2", "person",
                "ultralight", "down", "sleeping", "bag", "gloves", "kids", "women", "men", "rain", "shell",
                "headlamp", "usb", "stove", "gas", "backpack", "30l", "trail", "running", "shoes", "gore-tex",
                "fleece", "beanie", "poles", "carbon", "bottle", "insulated", "sale", "gift", "card", "xl")
BLOG_SLUGS = ("how-to-layer-for-winter-hikes", "choosing-your-first-tent", "merino-vs-synthetic",
              "caring-for-down-jackets", "ten-essentials-checklist", "break-in-new-hiking-boots",
              "best-day-hikes-near-the-city", "packing-list-for-a-weekend-trip", "headlamp-buying-guide",
              "how-we-test-waterproof-gear", "trail-running-for-beginners", "winter-camping-stoves",
              "repairing-a-torn-tent", "kids-on-the-trail", "sizing-guide-gloves", "sustainable-outdoor-gear")
BLOG_TAGS = ("guides", "gear-care", "trips", "reviews", "beginners", "winter")
HELP_TOPICS = ("shipping", "returns", "payment", "sizes", "warranty", "contact")
SORTS = ("popular", "newest", "price_asc", "price_desc", "rating")
PRODUCT_RANGE = range(1001, 4801)
EXTERNAL_REFERERS = ("https://www.google.com/", "-", "https://www.bing.com/", "https://duckduckgo.com/",
                     "https://l.facebook.com/", "https://l.instagram.com/", "https://www.google.de/",
                     "https://www.ecosia.org/", "android-app://com.google.android.gm/")
_EXTERNAL_WEIGHTS = tuple(accumulate((42, 27, 6, 5, 5, 4, 5, 2, 4)))


def product_exists(pid: int) -> bool:
    """About 7 % of ids in the range were deleted: scrapers and stale links get 404 for them."""
    return (pid * 2654435761) % 97 >= 7


def category_of(pid: int) -> str:
    return CATEGORIES[(pid * 40503 >> 4) % len(CATEGORIES)]


PRODUCTS = tuple(p for p in PRODUCT_RANGE if product_exists(p))
MISSING_PRODUCTS = tuple(p for p in PRODUCT_RANGE if not product_exists(p))
BY_CATEGORY = {c: tuple(p for p in PRODUCTS if category_of(p) == c) for c in CATEGORIES}
_POPULAR = list(PRODUCTS)
Random(20261101).shuffle(_POPULAR)
POPULAR = tuple(_POPULAR)
FEATURED = POPULAR[:8]

# Static assets every page links; a browser fetches them once per session (304 when cached).
COMMON_ASSETS = (("/static/css/main.3f9a1c.css", 84213), ("/static/css/vendor.9b21e0.css", 31877),
                 ("/static/js/runtime.c41d7e.js", 2231), ("/static/js/vendor.7ad310.js", 291455),
                 ("/static/js/app.e02b5f.js", 118906), ("/static/fonts/inter-var.7c1e.woff2", 48256),
                 ("/images/logo.svg", 6120))
FAVICON = ("/favicon.ico", 15086)
BANNERS = tuple((f"/images/banners/{n}.jpg", s) for n, s in (("autumn-sale", 187342), ("new-tents", 154120),
                                                             ("free-shipping", 61204)))

# Next page kind after each kind (weights); "login" includes the POST attempts.
_NEXT = {
    "home": (("category", 35), ("product", 20), ("search", 18), ("blog", 7), ("login", 7), ("cart", 5),
             ("stores", 3), ("help", 3), ("catalog", 2)),
    "category": (("product", 55), ("category", 15), ("search", 12), ("home", 8), ("cart", 6), ("help", 4)),
    "product": (("product", 30), ("category", 20), ("cart", 20), ("search", 15), ("home", 8), ("help", 4),
                ("login", 3)),
    "search": (("product", 55), ("search", 25), ("category", 10), ("home", 6), ("cart", 4)),
    "cart": (("checkout", 45), ("product", 18), ("category", 15), ("home", 10), ("login", 12)),
    "checkout": (("login", 30), ("account", 25), ("home", 20), ("cart", 15), ("help", 10)),
    "login": (("account", 70), ("home", 15), ("cart", 15)),
    "account": (("orders", 50), ("home", 25), ("category", 25)),
    "orders": (("account", 30), ("home", 30), ("category", 20), ("help", 20)),
    "blog": (("blog", 35), ("home", 25), ("category", 25), ("product", 15)),
    "help": (("home", 35), ("category", 30), ("cart", 15), ("stores", 10), ("orders", 10)),
    "stores": (("home", 50), ("category", 50)),
    "catalog": (("home", 50), ("category", 50)),
}
_NEXT_KINDS = {k: (tuple(n for n, _ in v), tuple(accumulate(w for _, w in v))) for k, v in _NEXT.items()}
_LANDING = (("home", 32), ("product", 22), ("category", 14), ("blog", 14), ("help", 4), ("login", 6),
            ("stores", 3), ("search", 5))
_LANDING_KINDS = (tuple(n for n, _ in _LANDING), tuple(accumulate(w for _, w in _LANDING)))


def popular_product(rng: Random) -> int:
    return POPULAR[int(len(POPULAR) * rng.random() ** 3)]


def search_terms(rng: Random) -> str:
    return "+".join(rng.choice(SEARCH_WORDS) for _ in range(rng.choice((1, 1, 2, 2, 2, 3))))


def thumb(pid: int) -> tuple[str, int]:
    return f"/images/products/{pid}-thumb.jpg", 7000 + (pid * 104729) % 15000


def product_page_size(pid: int, rng: Random) -> int:
    return 26000 + (pid * 7919) % 17000 + rng.randrange(-300, 300)


def tracking_number(rng: Random) -> str:
    return f"1Z{rng.randrange(16**6):06X}{rng.randrange(10**10):010d}"


class Page:
    """One page view: the document, its images and the XHR calls its scripts make."""

    __slots__ = ("path", "status", "size", "images", "xhr")

    def __init__(self, path: str, status: int, size: int, images=(), xhr=()):
        self.path, self.status, self.size, self.images, self.xhr = path, status, size, images, xhr


def make_page(kind: str, rng: Random, category: str | None) -> Page:
    """A page of ``kind``; ``category`` (the one being browsed) steers product choice."""
    r = rng.random
    if kind == "product":
        if category and r() < 0.6 and BY_CATEGORY[category]:
            pid = rng.choice(BY_CATEGORY[category])
        elif r() < 0.012:
            pid = rng.choice(MISSING_PRODUCTS)  # stale link
            return Page(f"/product/{pid}", 404, 1480 + rng.randrange(40))
        else:
            pid = popular_product(rng)
        path = f"/product/{pid}" if r() < 0.9 else f"/product/{pid}?variant={rng.randrange(1, 6)}"
        images = tuple((f"/images/products/{pid}-{i}.jpg", 60000 + (pid * 7 + i * 40009) % 180000)
                       for i in range(1, 2 + pid % 3 + 1))
        xhr = [(f"/api/v1/reviews?product_id={pid}&page=1", 1200 + (pid * 31) % 7800),
               (f"/api/v1/recommendations?product_id={pid}", 2100 + (pid * 17) % 1900)]
        if r() < 0.15:
            xhr.append(("POST /api/v1/cart/items", 410 + rng.randrange(60)))
        return Page(path, 200, product_page_size(pid, rng), images, xhr)
    if kind == "category":
        category = category if category and r() < 0.3 else rng.choice(CATEGORIES)
        page = 1 if r() < 0.75 else rng.randrange(2, 5)
        path = f"/category/{category}" if page == 1 and r() < 0.8 else \
            f"/category/{category}?sort={rng.choice(SORTS)}&page={page}"
        items = BY_CATEGORY[category][(page - 1) * 12:page * 12]
        return Page(path, 200, 31000 + 1800 * len(items) + rng.randrange(-200, 200), tuple(map(thumb, items)))
    if kind == "search":
        page = 1 if r() < 0.8 else rng.randrange(2, 4)
        hits = rng.sample(POPULAR[:600], 10) if r() < 0.93 else []
        path = f"/search?q={search_terms(rng)}&page={page}"
        return Page(path, 200, 19000 + 2100 * len(hits) + rng.randrange(-200, 200), tuple(map(thumb, hits)))
    if kind == "home":
        return Page("/", 200, 41872 + rng.randrange(-250, 250), BANNERS + tuple(map(thumb, FEATURED)))
    if kind == "blog":
        if r() < 0.2:
            return Page(f"/blog?tag={rng.choice(BLOG_TAGS)}", 200, 22000 + rng.randrange(4000))
        slug = rng.choice(BLOG_SLUGS)
        size = 30000 + (len(slug) * 977) % 12000
        images = ((f"/images/blog/{slug}.jpg", 140000 + len(slug) * 1301), (f"/images/blog/{slug}-2.jpg", 90000))
        return Page(f"/blog/{slug}", 200, size, images)
    if kind == "cart":
        return Page("/cart", 200, 17800 + rng.randrange(-100, 900), (), (("/api/v1/cart", 600 + rng.randrange(2400)),))
    if kind == "checkout":
        return Page("/checkout", 200, 22350 + rng.randrange(300), (), (("/api/v1/cart", 600 + rng.randrange(2400)),))
    if kind == "login":
        return Page("/login?next=%2Faccount" if r() < 0.5 else "/login", 200, 12044)
    if kind == "account":
        return Page("/account", 200, 15320 + rng.randrange(400))
    if kind == "orders":
        xhr = ()
        if r() < 0.3:
            xhr = ((f"/api/v1/shipping/track?carrier=ups&tracking={tracking_number(rng)}", 900 + rng.randrange(600)),)
        if r() < 0.2:
            xhr += ((f"/account/invoice?file=invoice-{rng.randrange(10000, 99999)}.pdf", 40000 + rng.randrange(50000)),)
        return Page("/account/orders?page=1", 200, 18900 + rng.randrange(2000), (), xhr)
    if kind == "help":
        topic = rng.choice(HELP_TOPICS)
        return Page(f"/help?topic={topic}", 200, 14000 + len(topic) * 811)
    if kind == "stores":
        zipcode = f"{rng.randrange(10000, 99999)}"
        return Page("/stores", 200, 13200, (),
                    ((f"/api/v1/stores/nearby?zip={zipcode}&radius=25", 1800 + rng.randrange(900)),))
    return Page("/catalog/download?file=catalog-2026-autumn.pdf", 200, 2483311)


class Visitor:
    __slots__ = ("ip", "agent", "proto", "mobile", "apple", "last_start")

    def __init__(self, ip: str, agent: str, proto: str, mobile: bool):
        self.ip, self.agent, self.proto, self.mobile, self.last_start = ip, agent, proto, mobile, 0.0
        self.apple = "iPhone" in agent or "iPad" in agent


def human_session(rng: Random, v: Visitor, t: float, returning: bool) -> list[tuple]:
    """Page views with think times; the first page brings the static assets, later ones images and XHR."""
    out = []
    ip, agent, proto = v.ip, v.agent, v.proto
    add = out.append
    r, uniform = rng.random, rng.uniform
    kinds, cum = _LANDING_KINDS
    kind = rng.choices(kinds, cum_weights=cum)[0]
    referer = rng.choices(EXTERNAL_REFERERS, cum_weights=_EXTERNAL_WEIGHTS)[0]
    if referer.startswith("android-app:") and not v.mobile:
        referer = "-"
    n_pages = min(40, max(1, round(rng.lognormvariate(1.1, 0.8))))
    category = None
    for i in range(n_pages):
        page = make_page(kind, rng, category)
        if page.path.startswith("/category/"):
            category = page.path[10:].split("?", 1)[0]
        if r() < 0.01 and "?" not in page.path and page.path != "/":
            add((t, ip, f"GET {page.path}/ {proto}", 301, 245, referer, agent, 0))
            t += uniform(0.05, 0.3)
        add((t, ip, f"GET {page.path} {proto}", page.status, page.size, referer, agent, 0))
        url = SITE + page.path
        ta = t + uniform(0.05, 0.4)
        if i == 0:
            for path, size in COMMON_ASSETS:
                cached = returning and r() < 0.8
                add((ta, ip, f"GET {path} {proto}", 304 if cached else 200, 0 if cached else size, url, agent, 0))
                ta += uniform(0.005, 0.12)
            add((ta, ip, f"GET {FAVICON[0]} {proto}", 200, FAVICON[1], url, agent, 0))
            ta += uniform(0.01, 0.2)
            if v.apple and r() < 0.4:  # iOS asks for an icon the shop never made
                add((ta, ip, f"GET /apple-touch-icon.png {proto}", 404, 1480, "-", agent, 0))
                ta += uniform(0.01, 0.1)
        images = page.images[:6] if v.mobile else page.images
        for path, size in images:
            cached = returning and r() < 0.5
            add((ta, ip, f"GET {path} {proto}", 304 if cached else 200, 0 if cached else size, url, agent, 0))
            ta += uniform(0.005, 0.25)
        for call, size in page.xhr:
            ta += uniform(0.1, 1.5)
            request = f"{call} {proto}" if call.startswith("POST ") else f"GET {call} {proto}"
            add((ta, ip, request, 200, size, url, agent, 0))
        if kind == "login":
            for attempt in range(2 if r() < 0.25 else 1):
                ta += rng.lognormvariate(2.0, 0.5)
                ok = attempt == 1 or r() < 0.8
                add((ta, ip, f"POST /login {proto}", 200 if ok else 401, 52 if ok else 38, url, agent, 0))
                if ok:
                    break
        referer = url
        t = max(t + min(rng.lognormvariate(3.0, 1.0), 1500.0), ta + uniform(1.0, 5.0))
        names, cum = _NEXT_KINDS[kind]
        kind = rng.choices(names, cum_weights=cum)[0]
    return out


def crawler_session(rng: Random, ip: str, agent: str, t: float) -> list[tuple]:
    """A polite crawler: robots.txt first, then pages without assets at a steady pace."""
    out = [(t, ip, "GET /robots.txt HTTP/1.1", 200, 312, "-", agent, 0)]
    if rng.random() < 0.3:
        t += rng.uniform(1, 4)
        out.append((t, ip, "GET /sitemap.xml HTTP/1.1", 200, 48213, "-", agent, 0))
    for _ in range(min(120, max(1, round(rng.lognormvariate(2.6, 0.8))))):
        t += rng.lognormvariate(1.8, 0.7)
        x = rng.random()
        if x < 0.6:
            pid = rng.choice(PRODUCTS) if rng.random() < 0.95 else rng.choice(MISSING_PRODUCTS)
            ok = product_exists(pid)
            out.append((t, ip, f"GET /product/{pid} HTTP/1.1", 200 if ok else 404,
                        product_page_size(pid, rng) if ok else 1480, "-", agent, 0))
        else:
            page = make_page("category" if x < 0.8 else "blog" if x < 0.92 else "help" if x < 0.96 else "home",
                             rng, None)
            out.append((t, ip, f"GET {page.path} HTTP/1.1", page.status, page.size, "-", agent, 0))
    return out


def daily_rate(hour_local: float) -> float:
    """Relative traffic by local hour: busiest mid-afternoon, quietest around 3 am."""
    return 1.0 + 0.7 * math.cos(2 * math.pi * (hour_local - 15.0) / 24.0)


LOCAL_UTC_OFFSET_HOURS = 1.0  # the shop's customers live in CET
_AGENT_CUM = tuple(accumulate(w for _, w, _ in BROWSER_AGENTS))


def _daytime_start(rng: Random, duration: float, base_epoch: float) -> float:
    while True:
        t = rng.random() * duration
        hour = ((base_epoch + t) / 3600.0 + LOCAL_UTC_OFFSET_HOURS) % 24.0
        if rng.random() * 1.7 < daily_rate(hour):
            return t


def _new_visitor(rng: Random, book: AddressBook, visitors: list[Visitor], shared: set[str]) -> Visitor:
    agent, _, mobile = rng.choices(BROWSER_AGENTS, cum_weights=_AGENT_CUM)[0]
    ip = None
    if visitors and rng.random() < 0.01:  # a second device behind a home or office NAT
        other = rng.choice(visitors)
        if other.agent != agent and other.ip not in shared:
            ip = other.ip
            shared.add(ip)
    if ip is None:
        ip = book.ipv6(rng) if rng.random() < (0.2 if mobile else 0.07) else book.ipv4(rng)
    return Visitor(ip, agent, "HTTP/2.0" if rng.random() < 0.6 else "HTTP/1.1", mobile)


def benign_traffic(rng: Random, book: AddressBook, budget: int, duration: float, base_epoch: float) -> list[tuple]:
    """Exactly ``budget`` benign events in ``[0, duration)`` seconds: humans, returning humans, crawlers."""
    events: list[tuple] = []
    visitors: list[Visitor] = []
    shared: set[str] = set()
    crawlers = [(ip, agent) for ip in GOOGLEBOT_IPS for agent in CRAWLER_AGENTS["googlebot"]] + \
               [(ip, CRAWLER_AGENTS["bingbot"][0]) for ip in BINGBOT_IPS]
    while len(events) < budget:
        if rng.random() < 0.1:
            ip, agent = rng.choice(crawlers)
            session = crawler_session(rng, ip, agent, rng.random() * duration)
        else:
            visitor, t = None, 0.0
            if visitors and rng.random() < 0.3:
                visitor = rng.choice(visitors)
                t = visitor.last_start + rng.lognormvariate(math.log(8 * 3600.0), 1.0)
                if t >= duration:
                    visitor = None
            returning = visitor is not None
            if visitor is None:
                visitor = _new_visitor(rng, book, visitors, shared)
                visitors.append(visitor)
                t = _daytime_start(rng, duration, base_epoch)
            visitor.last_start = t
            session = human_session(rng, visitor, t, returning)
        room = budget - len(events)
        for event in session[:room]:
            if event[0] >= duration:
                break
            events.append(event)
    return events
