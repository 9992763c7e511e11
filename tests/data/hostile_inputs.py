"""Log files of every input path with given secrets and IPs placed in every field (the redaction tests).

Each builder returns the files it wrote and the options to ingest them with; every file also
holds records that do not parse, so the same values reach ``quarantine``.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import string
from dataclasses import dataclass
from pathlib import Path

from hypothesis import strategies as st

NGINX_WITH_HEADERS = ('$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
                      '"$http_referer" "$http_user_agent" "$http_x_forwarded_for" "$http_cookie" '
                      '"$http_authorization" "$http_x_api_key" "$request_body"')
APACHE_WITH_HEADERS = ('%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i" "%{Cookie}i" "%{Authorization}i" '
                       '"%{X-Forwarded-For}i"')

secrets = st.text(alphabet=string.ascii_letters + string.digits + "-._~", min_size=8, max_size=20).map(lambda s: "Sk" + s)


def _host_address(ip) -> bool:
    """What counts as an address (data/redaction.py): not N.0.0.0, not '::', an IPv6 with a digit."""
    text = str(ip)
    return not text.endswith(".0.0.0") if ip.version == 4 else (text != "::" and any(c.isdigit() for c in text))


ips = (st.ip_addresses(v=4) | st.ip_addresses(v=6)).filter(_host_address)


@dataclass
class Planted:
    secrets: list[str]          # S0..S6
    ips: list                    # five ipaddress objects

    def needles(self) -> list[str]:
        """Every string that must not survive: the secrets, Basic credentials, each IP as written."""
        basic = base64.b64encode(f"bob:{self.secrets[6]}".encode()).decode()
        return sorted({*self.secrets, basic, *(str(ip) for ip in self.ips)}, key=len, reverse=True)

    def ip(self, i: int) -> str:
        return str(self.ips[i])

    def url_host(self, i: int) -> str:
        return f"[{self.ips[i]}]" if self.ips[i].version == 6 else str(self.ips[i])

    def basic(self) -> str:
        return base64.b64encode(f"bob:{self.secrets[6]}".encode()).decode()


def combined_log(p: Planted, path: Path, clients: int = 1) -> Path:
    s = p.secrets
    lines = []
    for i in range(clients):
        lines.append(
            f'{p.ip(0)} - - [01/Nov/2026:12:00:{i % 60:02d} +0000] '
            f'"GET /login?user=bob&access_token={s[0]}&next=http://{p.url_host(1)}/x&user_password={s[1]}&q=1%27%20OR%201=1-- HTTP/1.1" '
            f'200 10 "http://shop.example/?session_id={s[2]}&from={p.ip(2)}" '
            f'"Mozilla/5.0 (X11; Linux) tool token={s[3]} via {p.ip(3)} Bearer {s[4]}"')
    lines.append(f"garbage from {p.ip(0)} password={s[1]} Authorization: Basic {p.basic()} [17/May/2015:10:05:03")
    path.write_text("\n".join(lines) + "\n")
    return path


def nginx_log(p: Planted, path: Path, peer: str | None = None) -> Path:
    s = p.secrets
    body = f'{{\\x22password\\x22:\\x22{s[1]}\\x22,\\x22note\\x22:\\x22from {p.ip(2)}\\x22}}'
    good = (f'{peer or p.ip(4)} - bob [01/Nov/2026:12:00:01 +0000] "POST /api/orders?id=1%27%20OR%201=1&api_key={s[5]} HTTP/1.1" '
            f'200 5 "http://r.example/?password={s[1]}" "agent {p.ip(3)}" "{p.ip(0)}, {p.ip(1)}" '
            f'"JSESSIONID={s[2]}; theme=dark" "Basic {p.basic()}" "{s[5]}" "{body}"')
    bad = good.replace("01/Nov/2026:12:00:01", "99/Nov/2026:12:00:01")   # quarantined: bad time
    path.write_text(good + "\n" + bad + "\n")
    return path


def apache_log(p: Planted, path: Path) -> Path:
    s = p.secrets
    line = (f'{p.ip(4)} - - [01/Nov/2026:12:00:02 +0000] "GET /account HTTP/1.1" 200 7 "-" "curl/8.0" '
            f'"PHPSESSID={s[2]}; auth_token={s[0]}" "Basic {p.basic()}" "{p.ip(0)}, {p.ip(1)}"')
    path.write_text(line + "\n" + line.replace('"GET /account HTTP/1.1"', '"GET /account HTTP/1.1') + "\n")
    return path


def raw_http(p: Planted, path: Path) -> Path:
    s = p.secrets
    form = f"user=bob&password={s[1]}&ip={p.ip(3)}"
    body = json.dumps({"client_secret": s[3], "ip": p.ip(2), "nested": {"api_key": s[5]}})
    head = (f"Host: {p.url_host(4)}:8080\r\nX-Forwarded-For: {p.ip(0)}, {p.ip(1)}\r\n"
            f"Cookie: PHPSESSID={s[2]}; pref=1\r\nX-Api-Key: {s[5]}\r\n"
            f"User-Agent: agent/1.0 ({p.ip(3)})\r\nReferer: http://shop/?token={s[0]}\r\n")
    text = (f"POST /login?debug=1 HTTP/1.1\r\n{head}Authorization: Bearer {s[4]}\r\n"
            f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(form)}\r\n\r\n{form}\r\n\r\n"
            f"POST /api HTTP/1.1\r\n{head}Authorization: Basic {p.basic()}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n{body}\r\n\r\n"
            f"GET /broken HTTP/1.1\r\n{head}this header line has no colon {p.ip(1)} password={s[6]}\r\n\r\n")
    path.write_bytes(text.encode("latin-1"))
    return path


def json_lines(p: Planted, path: Path) -> Path:
    s = p.secrets
    good = {"remote_addr": p.ip(0), "time_iso8601": "2026-11-01T12:00:03+00:00",
            "request": f"GET /x?api_key={s[5]}&u=http://{p.url_host(1)}/ HTTP/1.1", "status": 200,
            "http_user_agent": f"ua {p.ip(2)}", "http_referer": f"http://r/?password={s[1]}",
            "request_body": json.dumps({"client_secret": s[3], "ip": p.ip(3), "refresh_token": s[0]}),
            "http_x_forwarded_for": p.ip(4), "host": p.ip(4)}
    bad = f'{{"remote_addr": "{p.ip(0)}", "password": "{s[1]}", "auth": "Bearer {s[4]}", broken'
    path.write_text(json.dumps(good) + "\n" + bad + "\n")
    return path


def every_path(p: Planted, folder: Path) -> list[tuple[Path, dict]]:
    """(file, ingest options) for combined, nginx and Apache LogFormat with headers, raw HTTP and JSON lines."""
    return [(combined_log(p, folder / "combined.log"), {}),
            (nginx_log(p, folder / "nginx.log"), {"log_format": NGINX_WITH_HEADERS}),
            (apache_log(p, folder / "apache.log"), {"log_format": APACHE_WITH_HEADERS}),
            (raw_http(p, folder / "dump.txt"), {"format": "raw-http"}),
            (json_lines(p, folder / "lines.json"), {"format": "json"})]


def varchar_texts(con) -> dict[str, str]:
    """Every VARCHAR column of every table, as one text per table.column."""
    columns = con.execute("""SELECT table_name, column_name FROM information_schema.columns
                             WHERE table_schema = 'main' AND data_type = 'VARCHAR'""").fetchall()
    texts = {}
    for table, column in columns:
        (text,) = con.execute(f'SELECT coalesce(string_agg("{column}", chr(10)), \'\') FROM "{table}"').fetchone()
        texts[f"{table}.{column}"] = text
    return texts


def leaks(texts: dict[str, str], needles: list[str]) -> list[tuple[str, str]]:
    return [(where, needle) for where, text in texts.items() for needle in needles if needle in text]


__all__ = ["Planted", "secrets", "ips", "every_path", "varchar_texts", "leaks", "ipaddress"]
