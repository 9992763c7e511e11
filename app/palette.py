"""The workbench's colours: one meaning each, on every page and chart.

Red, amber and green are kept for verdicts (malicious, suspicious, benign), as on the
label badges; nothing else is drawn in them, so a red dot always means "malicious".
Attack families, cluster statuses and cluster ids get other hues (blues, purples,
browns, pinks), benign traffic green; grey means "no label" and light grey noise.
"""

from __future__ import annotations

VERDICT = {"malicious": "#d62728", "suspicious": "#f5a300", "benign": "#2ca02c"}
BADGE = {"malicious": "red", "suspicious": "orange", "benign": "green"}   # Streamlit's badge colour names
UNLABELLED = "#9ca3af"
NOISE = "#e5e7eb"
SCORES = "#4c78a8"                  # a histogram of scores: no verdict in it
ALERT_LINE = VERDICT["malicious"]   # the alert threshold: what is right of it alerts

STATUS = {"new": "#6a3d9a", "growing": "#1f77b4", "stable": "#17becf", "fading": UNLABELLED, "noise": NOISE}
# No red, amber or green among these: families are not verdicts (benign excepted).
OTHER_HUES = ("#1f77b4", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#393b79", "#6b6ecf", "#ce6dbd", "#7b4173",
              "#3182bd", "#5254a3", "#636363")
FAMILY = {"sqli": "#1f77b4", "xss": "#9467bd", "path_traversal": "#8c564b", "cmd_injection": "#e377c2",
          "ssrf": "#17becf", "xxe": "#393b79", "ssti": "#6b6ecf", "scanner": "#ce6dbd", "credential_stuffing": "#7b4173",
          "scraping": "#3182bd", "rfi": "#5254a3", "php_injection": "#7f5539", "java_injection": "#a55194",
          "nosql_injection": "#9c9ede", "ldap_injection": "#6baed6", "crlf_injection": "#de9ed6",
          "mixed": "#252525", "other": "#636363", "benign": VERDICT["benign"]}
_FIXED = {"unlabelled": UNLABELLED, "noise": NOISE}


def colour_map(kind: str, values) -> dict[str, str]:
    """Colours for the values of one map colouring (``status``, ``family``, ``verdict`` or ``cluster``)."""
    fixed = {"status": STATUS, "family": FAMILY, "verdict": VERDICT}.get(kind, {})
    out, spare = {}, 0
    for value in sorted({str(v) for v in values}, key=_cluster_order):
        if value in fixed:
            out[value] = fixed[value]
        elif value in _FIXED:
            out[value] = _FIXED[value]
        else:
            out[value] = OTHER_HUES[spare % len(OTHER_HUES)]
            spare += 1
    return out


def _cluster_order(value: str):
    number = value.rsplit(" ", 1)[-1]
    return (0, int(number), value) if number.isdigit() else (1, 0, value)
