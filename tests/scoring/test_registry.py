"""Model registry: versions appear whole and never change; aliases switch atomically; rollback walks back."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from waflens.data.errors import ConfigError, InputError
from waflens.scoring.registry import Registry, RegistryError, default_registry_root
from waflens.runtime.scorer import Scorer
from tests.conftest import REPO_ROOT
from tests.scoring.model_bundles import PROBE, sha256, tiny_bundle, train_bundles


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    """Two real bundles (request + session models) whose request models score the probe differently."""
    return train_bundles(tmp_path_factory.mktemp("registry"))


def register(registry, bundle, **metadata):
    return registry.register(bundle, metrics=metadata.pop("metrics", {"auc": 0.9}),
                             training=metadata.pop("training", {"requests": 3000}), move=False, **metadata)


def test_register_then_list_and_get(bundles, tmp_path):
    registry = Registry(tmp_path / "models")
    assert registry.versions() == [] and registry.alias("production") is None
    info = register(registry, bundles[0], labels={"label_event_max": 17}, card="# Model v1\nTrained for tests.\n")
    assert info.version == "v0001" and info.path == tmp_path / "models" / "versions" / "v0001"
    assert info.levels == ("request", "session") and info.aliases == () and info.parent is None
    assert info.metrics == {"auc": 0.9} and info.training == {"requests": 3000}
    assert info.labels == {"label_event_max": 17}
    assert info.created_at.endswith("+00:00")
    stored = json.loads((info.path / "version.json").read_text())
    assert stored["version"] == "v0001" and stored["levels"] == ["request", "session"]
    assert registry.card("v0001").startswith("# Model v1")
    for level in ("request", "session"):   # copied unchanged (move=False leaves the bundle)
        assert sha256(info.path / level / "model.npz") == sha256(bundles[0] / level / "model.npz")
    assert (bundles[0] / "request").is_dir()
    assert registry.versions() == [info] and registry.get("v0001") == info


def test_ids_increase_parents_resolve_and_bundles_move(bundles, tmp_path):
    registry = Registry(tmp_path / "models")
    first = register(registry, bundles[0])
    registry.promote(first.version)
    moved = tmp_path / "bundle"
    shutil.copytree(bundles[1], moved)
    second = registry.register(moved, metrics={}, training={}, parent="production")
    assert second.version == "v0002" and second.parent == "v0001"
    assert not moved.exists()   # moved in: nothing left behind
    third = registry.register(tiny_bundle(tmp_path / "tiny", 3.0, levels=("session",)), metrics={}, training={})
    assert third.version == "v0003" and third.levels == ("session",)
    assert [v.version for v in registry.versions()] == ["v0001", "v0002", "v0003"]
    assert [v.aliases for v in registry.versions()] == [("production",), (), ()]
    assert not [p for p in (tmp_path / "models" / "versions").iterdir() if p.name.startswith(".")]


def test_a_corrupt_bundle_is_refused_and_nothing_is_registered(bundles, tmp_path):
    registry = Registry(tmp_path / "models")
    corrupt = tmp_path / "corrupt"
    shutil.copytree(bundles[0], corrupt)
    data = bytearray((corrupt / "session" / "model.npz").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (corrupt / "session" / "model.npz").write_bytes(bytes(data))
    with pytest.raises(RegistryError, match="sha256") as refused:
        registry.register(corrupt, metrics={}, training={})   # move=True: the bundle must be given back
    assert refused.value.exit_code == 3 and str(corrupt / "session") in str(refused.value)
    assert registry.versions() == []
    assert list((tmp_path / "models" / "versions").iterdir()) == []   # no version, no staging left over
    assert (corrupt / "request" / "model.npz").is_file() and (corrupt / "session" / "model.npz").is_file()
    mislabelled = tmp_path / "mislabelled"
    shutil.copytree(bundles[0] / "request", mislabelled / "session")
    with pytest.raises(RegistryError, match="'request'-level"):
        registry.register(mislabelled, metrics={}, training={})
    with pytest.raises(RegistryError, match="no model"):
        registry.register(tmp_path, metrics={}, training={})
    assert registry.versions() == []


def test_update_metadata_adds_facts_but_never_rewrites_the_training(bundles, tmp_path):
    registry = Registry(tmp_path / "models")
    info = register(registry, bundles[0])
    before = sha256(info.path / "request" / "model.npz")
    updated = registry.update_metadata("v0001", gates={"auc": "pass"}, card="# card\n",
                                       extra={"shadow": {"agree": 0.98}})
    assert updated.gates == {"auc": "pass"} and registry.card("v0001") == "# card\n"
    assert registry.metadata("v0001")["shadow"] == {"agree": 0.98} and "updated_at" in registry.metadata("v0001")
    with pytest.raises(RegistryError, match="training"):
        registry.update_metadata("v0001", extra={"training": {}})
    assert registry.get("v0001").training == {"requests": 3000}
    assert sha256(info.path / "request" / "model.npz") == before


def test_promote_and_rollback_restore_the_exact_previous_artifact(bundles, tmp_path):
    registry = Registry(tmp_path / "models")
    for bundle in bundles:
        register(registry, bundle)
    register(registry, tiny_bundle(tmp_path / "tiny", 3.0))
    live = tmp_path / "models" / "production" / "request" / "model.npz"
    digest = {v: sha256(registry.path(v, "request") / "model.npz") for v in ("v0001", "v0002", "v0003")}
    assert len(set(digest.values())) == 3

    assert registry.promote("v0001", actor="ana", reason="first") is None
    assert registry.promote("v0002", actor="ana") == "v0001"
    assert registry.promote("v0003") == "v0002" and sha256(live) == digest["v0003"]
    assert os.readlink(tmp_path / "models" / "production") == os.path.join("versions", "v0003")   # relative

    assert registry.rollback(actor="bo", reason="false positives") == "v0002" and sha256(live) == digest["v0002"]
    assert registry.rollback() == "v0001" and sha256(live) == digest["v0001"]
    with pytest.raises(RegistryError, match="nothing to roll back to"):
        registry.rollback()
    assert registry.alias("production") == "v0001"
    # a promotion after rollbacks is what the next rollback undoes
    assert registry.promote("v0003") == "v0001"
    assert registry.rollback() == "v0001" and sha256(live) == digest["v0001"]

    history = registry.history("production")
    assert [(e["action"], e["version"], e["previous"]) for e in history] == [
        ("promote", "v0001", None), ("promote", "v0002", "v0001"), ("promote", "v0003", "v0002"),
        ("rollback", "v0002", "v0003"), ("rollback", "v0001", "v0002"),
        ("promote", "v0003", "v0001"), ("rollback", "v0001", "v0003")]
    assert history[0]["actor"] == "ana" and history[3]["reason"] == "false positives"
    assert set(history[0]) >= {"at", "alias", "version", "previous", "actor", "reason"}


def test_rollback_with_nothing_before_is_a_clear_error(tmp_path):
    registry = Registry(tmp_path / "models")
    with pytest.raises(RegistryError, match="no production version yet"):
        registry.rollback()
    registry.register(tiny_bundle(tmp_path / "b1", 1.0), metrics={}, training={})
    registry.promote("v0001")
    assert registry.promote("v0001") == "v0001"   # promoting production again changes and records nothing
    assert len(registry.history()) == 1
    with pytest.raises(RegistryError, match="nothing to roll back to: production \\(v0001\\)"):
        registry.rollback()


def test_aliases_and_unknown_names(tmp_path):
    registry = Registry(tmp_path / "models")
    registry.register(tiny_bundle(tmp_path / "b1", 1.0), metrics={}, training={})
    registry.register(tiny_bundle(tmp_path / "b2", 2.0), metrics={}, training={})
    registry.set_alias("candidate", "v0002", reason="nightly")
    assert registry.alias("candidate") == "v0002" and registry.get("candidate").version == "v0002"
    assert registry.path("candidate", "request") == tmp_path / "models" / "candidate" / "request"
    assert registry.path("v0001") == tmp_path / "models" / "versions" / "v0001"
    assert registry.history("candidate")[0]["action"] == "set"
    for name in ("v0042", "staging", "../versions"):
        with pytest.raises(RegistryError, match="unknown model version or alias") as unknown:
            registry.get(name)
        assert isinstance(unknown.value, InputError) and unknown.value.exit_code == 3
    with pytest.raises(RegistryError, match="has no session model"):
        registry.path("candidate", "session")
    for bad in ("versions", "v0009", "Prod", "a/b"):
        with pytest.raises(RegistryError, match="cannot be an alias"):
            registry.set_alias(bad, "v0001")
    (tmp_path / "models" / "notes").mkdir()
    with pytest.raises(RegistryError, match="not an alias"):
        registry.set_alias("notes", "v0001")


def test_an_unusable_root_is_a_configuration_error(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(ConfigError, match="not a directory") as error:
        Registry(tmp_path / "file").versions()
    assert error.value.exit_code == 5
    monkeypatch.delenv("WAFLENS_MODELS", raising=False)
    assert default_registry_root(tmp_path / "db" / "w.duckdb") == tmp_path / "db" / "models"
    monkeypatch.setenv("WAFLENS_MODELS", str(tmp_path / "elsewhere"))
    assert default_registry_root(tmp_path / "db" / "w.duckdb") == tmp_path / "elsewhere"


PROMOTER = """
import sys
from pathlib import Path
from waflens.scoring.registry import Registry
registry, stop, n = Registry(sys.argv[1]), Path(sys.argv[2]), 0
print("ready", flush=True)
while not stop.exists():
    registry.promote(("v0001", "v0002")[n % 2], actor="flipper")
    n += 1
print(n)
"""


def test_loads_during_promotions_get_one_whole_version(bundles, tmp_path):
    """Another process flips production between two real models while this one loads through the link."""
    registry = Registry(tmp_path / "models")
    for bundle in bundles:
        register(registry, bundle)
    expected = {Scorer.load(registry.path(v, "request")).score_request(*PROBE).score for v in ("v0001", "v0002")}
    assert len(expected) == 2
    registry.promote("v0001")
    stop = tmp_path / "stop"
    flipper = subprocess.Popen([sys.executable, "-c", PROMOTER, str(registry.root), str(stop)], cwd=REPO_ROOT,
                               stdout=subprocess.PIPE, text=True)
    seen, loads, deadline = set(), 0, time.monotonic() + 60
    try:
        assert flipper.stdout.readline().strip() == "ready"
        while loads < 150 or (len(seen) < 2 and time.monotonic() < deadline):
            scorer = Scorer.load(registry.root / "production" / "request", warm_up=False)
            seen.add(scorer.score_request(*PROBE).score)
            loads += 1
    finally:
        stop.touch()
        flips = int(flipper.communicate(timeout=60)[0].strip())
    assert seen == expected, f"{loads} loads saw {seen}, expected {expected}"
    assert flips > 20   # the link really moved during the loads


REGISTRAR = """
import json, sys, time
from pathlib import Path
from waflens.scoring.registry import Registry
from tests.scoring.model_bundles import tiny_bundle
root, work, tag = sys.argv[1:]
bundles = [tiny_bundle(Path(work) / f"{tag}-{i}", float(i)) for i in range(8)]
while not (Path(work) / "go").exists():
    time.sleep(0.001)
registry = Registry(root)
print(json.dumps([registry.register(b, metrics={}, training={"by": tag}).version for b in bundles]))
"""


def test_concurrent_registrations_get_distinct_ids(tmp_path):
    root = tmp_path / "models"
    workers = [subprocess.Popen([sys.executable, "-c", REGISTRAR, str(root), str(tmp_path), tag], cwd=REPO_ROOT,
                                stdout=subprocess.PIPE, text=True) for tag in ("a", "b")]
    time.sleep(0.5)
    (tmp_path / "go").touch()
    ids = {tag: json.loads(w.communicate(timeout=120)[0]) for tag, w in zip(("a", "b"), workers)}
    assert all(w.returncode == 0 for w in workers)
    everything = ids["a"] + ids["b"]
    assert sorted(everything) == [f"v{i:04d}" for i in range(1, 17)]
    registry = Registry(root)
    for tag, versions in ids.items():
        assert versions == sorted(versions)   # each process's own registrations in order
        assert all(registry.get(v).training == {"by": tag} for v in versions)
