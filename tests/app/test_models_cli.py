"""``waflens models``: the JSON contract, confirmation prompts, promote / rollback, one-line errors."""

import io
import json

import pytest

from waflens.app.cli import main
from waflens.scoring.registry import Registry
from tests.scoring.model_bundles import tiny_bundle


@pytest.fixture
def registry(tmp_path):
    """Three versions, the first in production."""
    registry = Registry(tmp_path / "models")
    for i in (1, 2, 3):
        registry.register(tiny_bundle(tmp_path / f"bundle-{i}", float(i), levels=("request", "session")),
                          metrics={"auc": 0.9 + i / 100, "note": "text is left out of the table"},
                          training={"requests": 1000 * i}, card=f"# Model {i}\n" if i == 2 else None)
    registry.promote("v0001", actor="test")
    return registry


def run(capsys, *args, stdin: str | None = None, monkeypatch=None):
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_json_list_contract(registry, capsys):
    code, out, _ = run(capsys, "--json", "models", "--models", str(registry.root), "list")
    assert code == 0 and out.count("\n") == 1
    listed = json.loads(out)
    assert list(listed) == ["versions"]
    assert [v["version"] for v in listed["versions"]] == ["v0001", "v0002", "v0003"]
    first = listed["versions"][0]
    assert {k: first[k] for k in ("version", "created_at", "aliases", "metrics")} == {
        "version": "v0001", "created_at": registry.get("v0001").created_at, "aliases": ["production"],
        "metrics": {"auc": 0.91, "note": "text is left out of the table"}}
    assert listed["versions"][1]["aliases"] == []


def test_text_list_and_show(registry, capsys):
    code, out, _ = run(capsys, "models", "--models", str(registry.root), "list")
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["VERSION", "CREATED", "ALIASES", "LEVELS", "METRICS"]
    assert lines[1].split()[0] == "v0001" and "production" in lines[1] and "auc=0.91" in lines[1]
    assert "request,session" in lines[2] and "note=" not in out
    code, out, _ = run(capsys, "models", "--models", str(registry.root), "show", "v0002")
    assert code == 0 and '"requests": 2000' in out and out.rstrip().endswith("# Model 2")
    code, out, _ = run(capsys, "--json", "models", "--models", str(registry.root), "show", "production")
    shown = json.loads(out)
    assert shown["version"] == "v0001" and shown["aliases"] == ["production"] and shown["card"] is None


def test_default_root_is_beside_the_database(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("WAFLENS_MODELS", raising=False)
    Registry(tmp_path / "models").register(tiny_bundle(tmp_path / "b", 1.0), metrics={}, training={})
    code, out, _ = run(capsys, "--db", str(tmp_path / "w.duckdb"), "--json", "models", "list")
    assert code == 0 and [v["version"] for v in json.loads(out)["versions"]] == ["v0001"]
    monkeypatch.setenv("WAFLENS_MODELS", str(tmp_path / "empty"))
    code, out, _ = run(capsys, "--db", str(tmp_path / "w.duckdb"), "--json", "models", "list")
    assert code == 0 and json.loads(out) == {"versions": []}


def test_promote_asks_first(registry, capsys, monkeypatch):
    args = ("models", "--models", str(registry.root), "promote", "v0002")
    code, _, err = run(capsys, *args, stdin="", monkeypatch=monkeypatch)   # no input: a script without --yes
    assert code == 130 and "not confirmed: production is still v0001" in err and "--yes" in err
    assert registry.alias("production") == "v0001"
    code, _, err = run(capsys, *args, stdin="n\n", monkeypatch=monkeypatch)
    assert code == 130 and registry.alias("production") == "v0001"
    code, out, err = run(capsys, *args, stdin="y\n", monkeypatch=monkeypatch)
    assert code == 0 and "promote v0002 to production (now v0001)?" in err
    assert out.strip() == "production: v0001 -> v0002" and registry.alias("production") == "v0002"


def test_promote_yes_and_rollback(registry, capsys):
    base = ("--json", "models", "--models", str(registry.root))
    code, out, _ = run(capsys, *base, "promote", "v0003", "--yes", "--reason", "nightly retrain")
    assert code == 0 and json.loads(out) == {"production": "v0003", "previous": "v0001", "changed": True}
    assert registry.history("production")[-1]["reason"] == "nightly retrain"
    code, out, _ = run(capsys, *base, "promote", "production", "--yes")
    assert code == 0 and json.loads(out)["changed"] is False
    code, out, _ = run(capsys, *base, "rollback", "--yes", "--reason", "false positives")
    assert code == 0 and json.loads(out) == {"production": "v0001", "previous": "v0003", "changed": True}
    assert registry.alias("production") == "v0001"
    code, out, err = run(capsys, *base, "rollback", "--yes")
    assert code == 3 and out == "" and err.count("\n") == 1 and "nothing to roll back to" in err


def test_unknown_version_is_a_one_line_input_error(registry, capsys):
    for command in (("promote", "v0042", "--yes"), ("show", "v0042"), ("show", "staging")):
        code, out, err = run(capsys, "models", "--models", str(registry.root), *command)
        assert code == 3 and out == ""
        assert err.count("\n") == 1 and err.startswith("waflens: error: unknown model version or alias")
    assert registry.alias("production") == "v0001"


def test_a_file_as_registry_is_a_configuration_error(tmp_path, capsys):
    (tmp_path / "models").write_text("")
    code, _, err = run(capsys, "models", "--models", str(tmp_path / "models"), "list")
    assert code == 5 and err.count("\n") == 1 and "not a directory" in err
