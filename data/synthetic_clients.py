"""Who sends the synthetic traffic: client addresses and user agents.

One :class:`AddressBook` hands out every address of a run, so benign visitors, crawlers
and each attack campaign never share an address (nor, for campaigns that come from one
network, its /24). Sets here are only asked for membership, never iterated: iteration
order of a set of strings changes with ``PYTHONHASHSEED`` and would break determinism.
"""

from __future__ import annotations

import ipaddress
from random import Random

# First octets of ordinary unicast space allocated to the RIRs (no private, CGNAT,
# benchmarking, multicast or documentation ranges; none of the crawler ranges below).
_FIRST_OCTETS = (
    2, 5, 24, 31, 37, 41, 45, 46, 47, 49, 50, 58, 59, 60, 61, 62, 67, 68, 69, 70, 71, 72, 73, 74, 75, 76,
    77, 78, 79, 80, 81, 82, 83, 84, 85, 86, 87, 88, 89, 90, 91, 92, 93, 94, 95, 96, 97, 98, 99, 101, 103,
    104, 105, 106, 108, 109, 110, 111, 112, 113, 114, 115, 116, 117, 118, 119, 120, 121, 122, 123, 124,
    125, 141, 145, 146, 149, 151, 154, 159, 161, 164, 173, 174, 175, 176, 177, 178, 179, 180, 181, 182,
    183, 185, 186, 187, 188, 189, 190, 191, 193, 194, 195, 196, 197, 200, 201, 202, 210, 211, 212, 213,
    217, 218, 219, 220, 221, 222, 223,
)
# Hosting-provider-like first octets for attack infrastructure (VPS ranges are popular).
HOSTING_OCTETS = (5, 37, 45, 46, 62, 77, 78, 80, 85, 91, 92, 93, 94, 103, 104, 141, 146, 159, 164, 176, 178,
                  185, 188, 193, 194, 195, 212, 213)
_IPV6_PREFIXES = ("2a02:8070", "2a01:cb1d", "2001:16b8", "2600:1700", "2601:18c", "2a00:23c7", "2a02:a46",
                  "2406:3003", "2804:14d", "2a0a:a540", "2003:e6", "2a02:2f0e")

GOOGLEBOT_IPS = tuple(f"66.249.{a}.{b}" for a, b in ((64, 1), (64, 33), (65, 71), (66, 12), (66, 194),
                                                    (68, 5), (68, 40), (69, 130), (70, 9), (72, 98),
                                                    (73, 21), (79, 160)))
BINGBOT_IPS = ("157.55.39.12", "157.55.39.209", "40.77.167.4", "40.77.167.61", "40.77.167.139",
               "207.46.13.27", "207.46.13.180", "52.167.144.210")

_CHROME = "Mozilla/5.0 ({os}) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 {tail}Safari/537.36{extra}"
_FIREFOX = "Mozilla/5.0 ({os}; rv:{v}.0) Gecko/20100101 Firefox/{v}.0"
_SAFARI = "Mozilla/5.0 ({os}) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/{v} {tail}Safari/{build}"
_WIN, _MAC, _LINUX = "Windows NT 10.0; Win64; x64", "Macintosh; Intel Mac OS X 10_15_7", "X11; Linux x86_64"
_IPHONE, _IPAD = "iPhone; CPU iPhone OS 18_6 like Mac OS X", "iPad; CPU OS 18_6 like Mac OS X"

# (user agent, weight, is_mobile): browser versions of late 2026 (the default window).
BROWSER_AGENTS: tuple[tuple[str, float, bool], ...] = (
    (_CHROME.format(os=_WIN, v=142, tail="", extra=""), 14, False),
    (_CHROME.format(os=_WIN, v=141, tail="", extra=""), 5, False),
    (_CHROME.format(os=_WIN, v=143, tail="", extra=""), 3, False),
    (_CHROME.format(os=_MAC, v=142, tail="", extra=""), 6, False),
    (_CHROME.format(os=_MAC, v=141, tail="", extra=""), 2, False),
    (_CHROME.format(os=_LINUX, v=142, tail="", extra=""), 1.5, False),
    (_CHROME.format(os=_WIN, v=142, tail="", extra=" Edg/142.0.0.0"), 5, False),
    (_CHROME.format(os=_WIN, v=141, tail="", extra=" Edg/141.0.0.0"), 1.5, False),
    (_CHROME.format(os=_MAC, v=142, tail="", extra=" Edg/142.0.0.0"), 0.5, False),
    (_CHROME.format(os=_WIN, v=141, tail="", extra=" OPR/125.0.0.0"), 0.8, False),
    (_FIREFOX.format(os=_WIN, v=145), 4, False),
    (_FIREFOX.format(os=_WIN, v=144), 1.5, False),
    (_FIREFOX.format(os="Windows NT 10.0; Win64; x64", v=140), 0.7, False),
    (_FIREFOX.format(os="Macintosh; Intel Mac OS X 10.15", v=145), 1.2, False),
    (_FIREFOX.format(os=_LINUX, v=145), 1, False),
    (_FIREFOX.format(os="X11; Ubuntu; Linux x86_64", v=144), 0.8, False),
    (_SAFARI.format(os=_MAC, v="26.1", tail="", build="605.1.15"), 4, False),
    (_SAFARI.format(os=_MAC, v="26.0.1", tail="", build="605.1.15"), 1.5, False),
    (_SAFARI.format(os=_MAC, v="18.6", tail="", build="605.1.15"), 1, False),
    (_CHROME.format(os="Linux; Android 10; K", v=142, tail="Mobile ", extra=""), 12, True),
    (_CHROME.format(os="Linux; Android 10; K", v=141, tail="Mobile ", extra=""), 4, True),
    ("Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/29.0 "
     "Chrome/136.0.0.0 Mobile Safari/537.36", 2.5, True),
    ("Mozilla/5.0 (Android 16; Mobile; rv:145.0) Gecko/145.0 Firefox/145.0", 0.8, True),
    (_SAFARI.format(os=_IPHONE, v="26.1", tail="Mobile/15E148 ", build="604.1"), 11, True),
    (_SAFARI.format(os=_IPHONE, v="26.0", tail="Mobile/15E148 ", build="604.1"), 4, True),
    (_SAFARI.format(os="iPhone; CPU iPhone OS 18_7 like Mac OS X", v="18.7", tail="Mobile/15E148 ",
                    build="604.1"), 2, True),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "CriOS/142.0.7444.77 Mobile/15E148 Safari/604.1", 2, True),
    (_SAFARI.format(os=_IPAD, v="26.1", tail="Mobile/15E148 ", build="604.1"), 1.5, True),
    (_CHROME.format(os="Linux; Android 10; K", v=142, tail="", extra=""), 1, False),  # Android tablet
    (_CHROME.format(os="X11; CrOS x86_64 14541.0.0", v=142, tail="", extra=""), 0.7, False),
)

CRAWLER_AGENTS = {
    "googlebot": ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
                  "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like "
                  "Gecko) Chrome/142.0.7444.59 Mobile Safari/537.36 (compatible; Googlebot/2.1; "
                  "+http://www.google.com/bot.html)"),
    "bingbot": ("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",),
}


class AddressBook:
    """Hands out distinct public-looking addresses; a /24 given to a campaign is kept for it."""

    def __init__(self) -> None:
        self._used: set[str] = set(GOOGLEBOT_IPS) | set(BINGBOT_IPS)
        self._reserved_nets: set[str] = set()

    def _fresh(self, address: str) -> bool:
        if address in self._used or address.rsplit(".", 1)[0] in self._reserved_nets:
            return False
        if not ipaddress.ip_address(address).is_global:
            return False
        self._used.add(address)
        return True

    def ipv4(self, rng: Random, octets: tuple[int, ...] = _FIRST_OCTETS) -> str:
        while True:
            address = f"{rng.choice(octets)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
            if self._fresh(address):
                return address

    def ipv6(self, rng: Random) -> str:
        while True:
            tail = ":".join(f"{rng.randrange(1, 0x10000):x}" for _ in range(6))
            address = f"{rng.choice(_IPV6_PREFIXES)}:{tail}"
            if self._fresh(address):
                return address

    def network(self, rng: Random, hosts: int, octets: tuple[int, ...] = HOSTING_OCTETS) -> list[str]:
        """``hosts`` addresses in one fresh /24, which no one else will get an address from."""
        while True:
            net = f"{rng.choice(octets)}.{rng.randrange(256)}.{rng.randrange(256)}"
            if net in self._reserved_nets or not ipaddress.ip_address(f"{net}.1").is_global:
                continue
            candidates = [f"{net}.{h}" for h in sorted(rng.sample(range(2, 254), hosts))]
            if any(c in self._used for c in candidates):
                continue
            self._reserved_nets.add(net)
            self._used.update(candidates)
            return candidates


def reserve(book: AddressBook, addresses) -> None:
    """Mark addresses (e.g. of a real log used as background) as taken, so no campaign gets one."""
    book._used.update(addresses)
