"""The fixed attack-family taxonomy labels use, mapped to CWE, CAPEC, OWASP Top 10 (2021) and CRS.

Names are stored in users' databases (``label_events.family``): they never change. A new
family gets a new name; the names other tools and data sets use for ours are in
``ALIASES`` (``lfi`` is ``path_traversal``, ``rce`` is ``cmd_injection``).

Where the numbers come from: CWE and CAPEC ids as MITRE lists them (CWE 4.x, CAPEC 3.9);
``owasp`` is the 2021 category whose CWE list holds the family's main CWE (A03's text also
names NoSQL, LDAP and expression-language injection; XXE's CWE-611 is in A05 since 2021);
``crs`` is the OWASP Core Rule Set (v4) rule file whose rules target the family. Families
with no CRS file of their own say so (``None``): SSTI and XXE payloads are caught, if at
all, by the generic, PHP, Java or protocol files, and credential stuffing and scraping are
rate questions, not payload rules.
"""

from typing import NamedTuple


class Family(NamedTuple):
    name: str
    title: str
    owasp: str | None
    capec: tuple[int, ...]
    cwe: tuple[int, ...] = ()
    crs: str | None = None


A01 = "A01:2021 Broken Access Control"
A03 = "A03:2021 Injection"
A05 = "A05:2021 Security Misconfiguration"
A07 = "A07:2021 Identification and Authentication Failures"
A10 = "A10:2021 Server-Side Request Forgery"

FAMILIES = {f.name: f for f in (
    Family("sqli", "SQL injection", A03, (66,), (89,), "REQUEST-942-APPLICATION-ATTACK-SQLI"),
    Family("xss", "Cross-site scripting", A03, (63,), (79,), "REQUEST-941-APPLICATION-ATTACK-XSS"),
    Family("path_traversal", "Path traversal / local file inclusion", A01, (126, 252), (22,),
           "REQUEST-930-APPLICATION-ATTACK-LFI"),
    Family("rfi", "Remote file inclusion", A03, (193, 253), (98,), "REQUEST-931-APPLICATION-ATTACK-RFI"),
    Family("cmd_injection", "OS command injection / RCE", A03, (88,), (78,), "REQUEST-932-APPLICATION-ATTACK-RCE"),
    Family("php_injection", "PHP code injection", A03, (242, 586), (94, 95), "REQUEST-933-APPLICATION-ATTACK-PHP"),
    # JNDI lookups (Log4Shell, CWE-917), expression language (OGNL/SpEL, CWE-917), deserialization (CWE-502, in A08)
    Family("java_injection", "Java injection (JNDI / Log4Shell, expression language, deserialization)", A03,
           (242, 586), (917, 502), "REQUEST-944-APPLICATION-ATTACK-JAVA"),
    Family("ssrf", "Server-side request forgery", A10, (664,), (918,), "REQUEST-934-APPLICATION-ATTACK-GENERIC"),
    Family("ssti", "Server-side template injection", A03, (242,), (1336,), None),
    Family("xxe", "XML external entities", A05, (201, 221), (611,), None),
    Family("nosql_injection", "NoSQL injection", A03, (676,), (943,), "REQUEST-942-APPLICATION-ATTACK-SQLI"),
    Family("ldap_injection", "LDAP injection", A03, (136,), (90,), "REQUEST-921-PROTOCOL-ATTACK"),
    Family("crlf_injection", "CRLF injection / HTTP response splitting", A03, (34,), (93, 113),
           "REQUEST-921-PROTOCOL-ATTACK"),
    Family("scanner", "Vulnerability scanning / reconnaissance", A05, (169, 310), (), "REQUEST-913-SCANNER-DETECTION"),
    Family("credential_stuffing", "Credential stuffing / brute force", A07, (600, 49), (307,), None),
    Family("scraping", "Automated scraping", None, (), (), None),
    # several payload families, none carried by most of the cluster's sessions: split it before judging one
    Family("mixed", "Mixed attack families", None, (), (), None),
    Family("benign", "Benign traffic", None, (), (), None),
    Family("other", "Other / unclear", None, (), (), None),
)}
# Names other tools and data sets give our families (never stored: labels keep the canonical name).
ALIASES = {"lfi": "path_traversal", "traversal": "path_traversal", "rce": "cmd_injection", "cmdi": "cmd_injection",
           "php": "php_injection", "java": "java_injection", "jndi": "java_injection", "log4shell": "java_injection",
           "nosql": "nosql_injection", "nosqli": "nosql_injection", "ldap": "ldap_injection", "crlf": "crlf_injection",
           "recon": "scanner", "vuln_scanner": "scanner"}
VERDICTS = ("malicious", "suspicious", "benign")
SOURCES = ("suggested", "confirmed", "edited", "rejected")


def canonical_family(name: str) -> str | None:
    """The taxonomy's name for ``name`` (itself, or what an alias stands for); None when unknown."""
    key = name.strip().lower()
    return key if key in FAMILIES else ALIASES.get(key)
