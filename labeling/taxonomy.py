"""The fixed attack-family taxonomy labels use, mapped to OWASP Top 10 (2021) and CAPEC."""

from typing import NamedTuple


class Family(NamedTuple):
    name: str
    title: str
    owasp: str | None
    capec: tuple[int, ...]


FAMILIES = {f.name: f for f in (
    Family("sqli", "SQL injection", "A03:2021 Injection", (66,)),
    Family("xss", "Cross-site scripting", "A03:2021 Injection", (63,)),
    Family("path_traversal", "Path traversal / local file inclusion", "A01:2021 Broken Access Control", (126, 252)),
    Family("cmd_injection", "OS command injection / RCE", "A03:2021 Injection", (88,)),
    Family("ssrf", "Server-side request forgery", "A10:2021 Server-Side Request Forgery", (664,)),
    Family("xxe", "XML external entities", "A05:2021 Security Misconfiguration", (201,)),
    Family("ssti", "Server-side template injection", "A03:2021 Injection", (242,)),
    Family("scanner", "Vulnerability scanning / reconnaissance", "A05:2021 Security Misconfiguration", (169,)),
    Family("credential_stuffing", "Credential stuffing / brute force", "A07:2021 Identification and Authentication Failures", (600, 49)),
    Family("scraping", "Automated scraping", None, (573,)),
    Family("benign", "Benign traffic", None, ()),
    Family("other", "Other / unclear", None, ()),
)}
VERDICTS = ("malicious", "suspicious", "benign")
SOURCES = ("suggested", "confirmed", "edited", "rejected")
