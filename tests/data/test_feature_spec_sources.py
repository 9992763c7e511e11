"""The feature spec has one home, ``waflens.runtime.feature_spec``: no hand-written copy of its values may
reappear in the SQL, the kernels, the reference or the runtime.

Copies are found by value, not by name: a collection literal holding several items of a spec list, a
byte set equal to the special bytes (also as a SQL regex character class, compared by what it matches),
an ``ext_class``/``ua_class`` compared with a number, a feature column or spec constant assigned a literal.
Each check also runs on a made-up copy of the kind it hunts, so it cannot pass by finding nothing.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from waflens.runtime import feature_spec as spec

REPO = Path(__file__).resolve().parents[2]
SPEC_FILE = REPO / "runtime" / "feature_spec.py"
# Where the spec is implemented or consumed by the runtime: every first-party module of these folders.
PYTHON_FOLDERS = ("runtime", "data", "scoring", "clustering")
SQL_FOLDERS = ("data", "clustering", "labeling", "scoring", "app")

NAMED_LISTS = {**{name: tokens for name, tokens in spec.TOKEN_GROUPS.items()},
               **{name: exts for name, (_, exts) in spec.EXTENSION_GROUPS.items()},
               "browser_ua_prefixes": spec.BROWSER_UA_PREFIXES, "common_methods": spec.COMMON_METHODS,
               "request feature names": spec.REQUEST_FEATURE_NAMES,
               "session feature names": spec.SESSION_FEATURE_NAMES}
COPIED_ITEMS = 3  # this many items of one spec list in one literal make a copy (all of a shorter list)
COPIED_NAMES = 0.8  # feature names: a selection (which to log-compress) is a use; most of them in a row, a copy
EXEMPT = set(spec.SPECIAL_EXEMPT_BYTES)
BYTE_SETS = {"the special bytes": set(spec.SPECIAL_BYTES), "the special-exempt bytes": EXEMPT,
             "the special-exempt bytes with whitespace": EXEMPT | set(spec.WHITESPACE_BYTES)}
CLASS_FEATURES = ("ext_class", "ua_class")
SPEC_CONSTANTS = {name for name in dir(spec) if name.isupper()}


def python_sources(root: Path = REPO) -> list[Path]:
    files = [p for folder in PYTHON_FOLDERS for p in (root / folder).rglob("*.py")]
    return sorted(p for p in files if p.resolve() != (root / "runtime" / "feature_spec.py").resolve())


def sql_sources(root: Path = REPO) -> list[Path]:
    return sorted(p for folder in SQL_FOLDERS for p in (root / folder).rglob("*.sql"))


# --- what counts as a copy ---

def _strings(node: ast.AST, keys: bool = True) -> list[str] | None:
    """The string items of a tuple/list/set literal, a dict literal's keys, or a "a b c".split() call."""
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        items = node.elts
    elif isinstance(node, ast.Dict):
        if not keys:
            return None
        items = [k for k in node.keys if k is not None]
    elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "split"
          and isinstance(node.func.value, ast.Constant) and isinstance(node.func.value.value, str)):
        return node.func.value.value.split()
    else:
        return None
    return [item.value for item in items if isinstance(item, ast.Constant) and isinstance(item.value, str)]


def _byte_values(node: ast.AST) -> set[int] | None:
    """The byte values a literal spells: a bytes constant, or a tuple/list/set of small int constants."""
    if isinstance(node, ast.Constant) and isinstance(node.value, bytes):
        return set(node.value)
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)) and len(node.elts) >= 3 and all(
            isinstance(e, ast.Constant) and type(e.value) is int and 0 <= e.value < 256 for e in node.elts):
        return {e.value for e in node.elts}
    return None


def _is_literal(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.UnaryOp):
        return _is_literal(node.operand)
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return all(_is_literal(e) for e in node.elts)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range":
        return all(isinstance(a, ast.Constant) for a in node.args)
    return False


def _names(target: ast.AST) -> list[str]:
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, (ast.Tuple, ast.List)):
        return [n for e in target.elts for n in _names(e)]
    return []


def _mentions_class(node: ast.AST) -> str | None:
    text = ast.unparse(node).lower()
    return next((name for name in CLASS_FEATURES if name in text), None)


def _int_literals_or_range(node: ast.AST) -> bool:
    return _int_literals(node) or (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                                   and node.func.id == "range" and all(isinstance(a, ast.Constant) for a in node.args))


def _int_literals(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        return type(node.value) is int
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return bool(node.elts) and all(_int_literals(e) for e in node.elts)
    return False


def python_copies(source: str, where: str, runtime: bool = True) -> list[str]:
    """Every hand-written copy of a spec value in a Python module's source. ``runtime``: a runtime module, where
    ``row`` is a feature row (elsewhere it is often a database row)."""
    found = []
    tree = ast.parse(source)
    for node in tree.body:  # module level: a feature's column given as a number
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None and _int_literals_or_range(node.value):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for name in (n for t in targets for n in _names(t)):
                if name.lstrip("_").lower() in spec.REQUEST_FEATURE_NAMES:
                    found.append(f"{where}:{node.lineno}: the column of {name.lstrip('_').lower()} written as a "
                                 "number (use feature_spec.request_column)")
    for node in ast.walk(tree):
        line = f"{where}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Constant) and node.value == spec.FEATURE_SPEC_VERSION:
            found.append(f"{line}: the spec version {node.value!r} as a literal")
        if isinstance(node, ast.Constant) and node.value == spec.REFERER_URL_RE:
            found.append(f"{line}: REFERER_URL_RE's pattern as a literal")
        for name, items in NAMED_LISTS.items():
            names = "feature names" in name
            strings = _strings(node, keys=not names)  # (a dict keyed by feature names computes them by name)
            if strings:
                need = int(COPIED_NAMES * len(items)) if names else min(COPIED_ITEMS, len(items))
                shared = [s for s in strings if s in items]
                if len(set(shared)) >= need:
                    found.append(f"{line}: {len(set(shared))} items of {name} ({', '.join(shared[:4])}, ...)")
        values = _byte_values(node)
        if values:
            for name, wanted in BYTE_SETS.items():
                if values == wanted:
                    found.append(f"{line}: {name} as a literal")
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None and _is_literal(node.value):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for name in (n for t in targets for n in _names(t)):
                if name in SPEC_CONSTANTS:
                    found.append(f"{line}: {name} assigned a literal (import it from waflens.runtime.feature_spec)")
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(_mentions_class(s) for s in sides) and any(_int_literals(s) for s in sides):
                found.append(f"{line}: {_mentions_class(next(s for s in sides if _mentions_class(s)))} compared "
                             f"with a number ({ast.unparse(node)})")
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "isin"
                and len(node.args) == 2 and _mentions_class(node.args[0]) and _int_literals(node.args[1])):
            found.append(f"{line}: {_mentions_class(node.args[0])} tested against numbers ({ast.unparse(node)})")
        if isinstance(node, (ast.FunctionDef, ast.Lambda)) and re.search(
                r"extension_class|ua_class|user_agent_class|agent_tokens", getattr(node, "name", "")):
            for ret in ast.walk(node):
                if isinstance(ret, ast.Return) and ret.value is not None and _int_literals(ret.value):
                    found.append(f"{where}:{ret.lineno}: {node.name} returns the class code "
                                 f"{ast.unparse(ret.value)} as a number")
        if (runtime and isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == "row"
                and isinstance(node.slice, ast.Constant) and type(node.slice.value) is int):
            found.append(f"{line}: a feature row's column written as a number ({ast.unparse(node)})")
    return found


_SQL_STRING = re.compile(r"'((?:[^']|'')*)'")
_CLASS_NUMBER = re.compile(r"\b(ext_class|ua_class)\s*(?:=|<>|!=|IN\s*\()\s*-?\d", re.IGNORECASE)
_CASE_BLOCK = re.compile(r"CASE\b((?:(?!\bCASE\b).)*?)\bEND\s+AS\s+(ext_class|ua_class)\b", re.IGNORECASE | re.DOTALL)


def _matched_bytes(pattern: str) -> set[int] | None:
    try:
        compiled = re.compile(pattern)
    except (re.error, ValueError):
        return None
    return {b for b in range(128) if compiled.search(chr(b))}


def sql_copies(sql: str, where: str) -> list[str]:
    """Every hand-written copy of a spec value in a SQL file's text (comments included: they go stale too)."""
    found = []
    literals = [m.group(1).replace("''", "'") for m in _SQL_STRING.finditer(sql)]
    if spec.FEATURE_SPEC_VERSION in literals:
        found.append(f"{where}: the spec version {spec.FEATURE_SPEC_VERSION!r} as a literal")
    for name, items in NAMED_LISTS.items():
        if "feature names" in name:
            continue  # the SQL names its columns: that is what it computes, not a copy
        shared = sorted(set(literals) & set(items))
        if len(shared) >= min(COPIED_ITEMS, len(items)):
            found.append(f"{where}: {len(shared)} items of {name} as literals ({', '.join(shared[:4])}, ...)")
    for literal in literals:
        if "[" in literal:
            matched = _matched_bytes(literal)
            for name, wanted in BYTE_SETS.items():
                if matched == wanted:
                    found.append(f"{where}: a pattern matching exactly {name}: {literal!r}")
        if literal == spec.REFERER_URL_RE:
            found.append(f"{where}: REFERER_URL_RE's pattern as a literal")
    for m in _CLASS_NUMBER.finditer(sql):
        found.append(f"{where}: {m.group(1)} compared with a number ({m.group(0)})")
    for m in _CASE_BLOCK.finditer(sql):
        codes = re.findall(r"\b(?:THEN|ELSE)\s+-?\d+", m.group(1), re.IGNORECASE)
        if codes:
            found.append(f"{where}: the {m.group(2)} codes written as numbers ({', '.join(codes)})")
    return found


# --- the tests ---

def test_python_sources_hold_no_copy_of_the_spec():
    sources = python_sources()
    assert len(sources) > 20 and any(p.name == "request.py" for p in sources)
    found = [c for p in sources for c in python_copies(p.read_text(), str(p.relative_to(REPO)),
                                                       runtime=p.relative_to(REPO).parts[0] == "runtime")]
    assert not found, "copies of waflens.runtime.feature_spec values:\n" + "\n".join(found)


def test_sql_sources_hold_no_copy_of_the_spec():
    sources = sql_sources()
    assert any(p.name == "request_features.sql" for p in sources)
    found = [c for p in sources for c in sql_copies(p.read_text(), str(p.relative_to(REPO)))]
    assert not found, "copies of waflens.runtime.feature_spec values:\n" + "\n".join(found)


@pytest.mark.parametrize("copy", [
    'FEATURE_SPEC_VERSION = "%s"' % spec.FEATURE_SPEC_VERSION,
    "N_REQUEST_FEATURES = 30",
    "GAP_BINS = 12",
    "EXT_NONE, EXT_STATIC = range(2)",
    "_EXT_CLASS = 26",
    'STATIC = ("css", "png", "jpg")',
    'KNOWN = "sqlmap nikto nmap".split()',
    'CODES = {"GET": 0, "POST": 1, "HEAD": 2}',
    'def f(m):\n    return m not in ("GET", "POST", "HEAD")',
    'PREFIXES = ("mozilla/", "opera/")',
    'EXEMPT = set(b"/.-_=&?")',
    "def f(c):\n    return c in (9, 10, 11, 12, 13, 32, 47, 46, 45, 95, 61, 38, 63)",
    "def f(s):\n    return s.ext_class == 3",
    "def f(row):\n    return row[_EXT_CLASS] in (3, 4)",
    'def f(x):\n    return np.isin(x["ua_class"], (1, 3))',
    "def _extension_class(p):\n    return 4",
    "def f(row):\n    return row[26]",
    "NAMES = " + repr(spec.SESSION_FEATURE_NAMES),
    "NAMES = " + repr(list(spec.REQUEST_FEATURE_NAMES[:-1])),
    'PATTERN = r"%s"' % spec.REFERER_URL_RE,
])
def test_the_python_check_finds_each_kind_of_copy(copy):
    assert python_copies(copy, "made-up.py")


@pytest.mark.parametrize("copy", [
    r"SELECT regexp_replace(p, '[\x00-\x08\x0E-\x1F!-%''-,:-<>@\[-\^\x60{-\x7F]+', '', 'g')",
    "SELECT CASE WHEN a THEN 0 WHEN b THEN $x ELSE 4 END AS ext_class",
    "SELECT CASE WHEN lua IN ('', '-') THEN 3 ELSE $ua_other END AS ua_class",
    "SELECT avg(CASE WHEN ext_class = 1 THEN 1 ELSE 0 END)",
    "SELECT f.ext_class IN (0, 2) AS is_page",
    "SELECT list_contains(['css', 'js', 'png'], e)",
    "SELECT method NOT IN ('GET', 'POST', 'HEAD')",
    "SELECT starts_with(lua, 'mozilla/') OR starts_with(lua, 'opera/')",
    "SELECT '%s' AS version" % spec.FEATURE_SPEC_VERSION,
])
def test_the_sql_check_finds_each_kind_of_copy(copy):
    assert sql_copies(copy, "made-up.sql")


def test_the_sql_gets_every_spec_list_and_code_it_uses_as_a_parameter():
    from waflens.data.feature_spec import sql_parameters

    params = sql_parameters()
    used = {name for p in sql_sources() for name in re.findall(r"\$([A-Za-z_]\w*)", p.read_text())}
    assert {"special_re", "ext_static", "ext_sensitive", "page_ext_classes", "ua_empty", "browser_ua_re",
            "common_methods"} <= used
    assert re.fullmatch(params["special_re"].rstrip("+"), "<") and not re.fullmatch(params["special_re"], "/")
    assert _matched_bytes(params["special_re"]) == set(spec.SPECIAL_BYTES)
