"""Attack payloads per family for the behaviour-neutral traffic, read at run time.

The families are those of issue C2: sqli, xss, lfi (traversal and local inclusion), rfi,
rce (OS commands), php (code injection, wrappers, object injection), java (JNDI /
log4shell, deserialization, expression languages) and scanner (which mixes them).
Payloads come from the shared payload lists and, where present, the attack values of
HttpParamsDataset's training split (``labelled/http_params_train.csv.gz``); neither is
copied into the repository. rfi, php and java have no public list in the shared data:
their small lists were written for waflens (``data/payload_samples/{rfi,php,java}.txt``).
A family draws a source list first, then a line from it, so a 22,000-line dotdotpwn
list does not crowd out the 4,800 lines of LFI targets beside it.
"""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path
from random import Random

from waflens.data.errors import InputError
from waflens.data.synthetic_payloads import SAMPLES_DIR, clean_payload_lines, fill_placeholders, read_payload_text

FAMILIES = ("sqli", "xss", "lfi", "rfi", "rce", "php", "java")
# family -> (files of the payload directory, files written for waflens, HttpParamsDataset attack types)
SOURCES: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "sqli": (("sqli.txt",), (), ("sqli",)),
    "xss": (("xss.txt",), (), ("xss",)),
    "lfi": (("path_traversal.txt", "lfi.txt"), (), ("path-traversal",)),
    "rfi": ((), ("rfi.txt",), ()),
    "rce": (("cmd_injection.txt",), (), ("cmdi",)),
    "php": ((), ("php.txt",), ()),
    "java": ((), ("java.txt",), ()),
}
HTTP_PARAMS = Path("labelled") / "http_params_train.csv.gz"


class FamilyPayloads:
    """Source lists of one family; :meth:`draw` picks a list, then a line."""

    def __init__(self, family: str, lists: list[list[str]], names: list[str]):
        self.family, self.lists, self.names = family, lists, names

    def draw(self, rng: Random) -> str:
        return rng.choice(rng.choice(self.lists))


def _read_lines(path: Path, rng: Random) -> list[str]:
    text = read_payload_text(path)
    lines = list(dict.fromkeys(fill_placeholders(line, rng) for line in clean_payload_lines(text)))
    if not lines:
        raise InputError(f"payload file {path} holds no usable payload lines")
    return lines


def http_params_attacks(path: Path) -> dict[str, list[str]]:
    """HttpParamsDataset attack values by attack type (``norm`` rows left out), file order, no duplicates."""
    try:
        with gzip.open(path, "rb") as handle:
            text = handle.read().decode("utf-8", errors="replace")
    except (OSError, EOFError) as exc:
        raise InputError(f"{path} cannot be read as a gzip CSV ({exc}); point shared_dir at the shared "
                         "datasets or leave it out") from None
    out: dict[str, dict[str, None]] = {}
    for row in csv.DictReader(io.StringIO(text, newline="")):
        kind, value = row.get("attack_type") or "", row.get("payload") or ""
        if kind != "norm" and row.get("label") == "anom" and value.strip():
            out.setdefault(kind, {})[value] = None
    return {kind: list(values) for kind, values in out.items()}


def load_family_payloads(payload_dir: Path, rng: Random, http_params: Path | None = None) -> dict[str, FamilyPayloads]:
    """Every family's source lists: shared (or sample) files, waflens' own lists, HttpParamsDataset values."""
    params = http_params_attacks(http_params) if http_params is not None and http_params.is_file() else {}
    out = {}
    for family in FAMILIES:
        shared, own, kinds = SOURCES[family]
        lists, names = [], []
        for name in shared:
            lists.append(_read_lines(payload_dir / name, rng))
            names.append(name)
        for name in own:
            lists.append(_read_lines(SAMPLES_DIR / name, rng))
            names.append(f"waflens:{name}")
        for kind in kinds:
            if params.get(kind):
                lists.append(params[kind])
                names.append(f"http_params_train:{kind}")
        out[family] = FamilyPayloads(family, lists, names)
    return out
