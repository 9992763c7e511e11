"""ModelWatcher: a published symlink swap goes live whole; broken versions never do.

Runtime only (no training here): the two versions are the request models stored in fixtures/ (two
seeds of one `waflens train` run, see fixtures/make_fixtures.py).
"""

import json
import os
import shutil
import threading
import time

import pytest

from waflens.runtime.artifact import ArtifactError
from waflens.runtime.hot_swap import ModelWatcher
from waflens.runtime.middleware import WaflensWSGIMiddleware
from waflens.runtime.scorer import Scorer
from tests.runtime.stored import FIXTURES

# unusual but not evidence of an attack: two versions score it differently (an SQL injection scores 1.0 with both)
PROBE = ("GET", "/search?q=red+wool+socks+size+42&page=17",
         {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0"})


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Two real versions of the request model (different forests), as a registry would hold them."""
    versions = tmp_path_factory.mktemp("hot_swap") / "versions"
    return (shutil.copytree(FIXTURES / "request", versions / "v1"),
            shutil.copytree(FIXTURES / "request-v2", versions / "v2"))


def publish(link, target):
    """What the registry does: a new symlink moved over the old one in one rename."""
    staging = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    os.symlink(target, staging)
    os.replace(staging, link)


def probe_score(model) -> float:
    return Scorer.load(model).score_request(*PROBE).score


def corrupt_copy(model, into, how):
    shutil.copytree(model, into)
    if how == "flipped byte":
        data = bytearray((into / "model.npz").read_bytes())
        data[len(data) // 2] ^= 0xFF
        (into / "model.npz").write_bytes(bytes(data))
    elif how == "other feature spec":
        manifest = json.loads((into / "manifest.json").read_text())
        manifest["feature_spec"]["version"] = "9.9"
        (into / "manifest.json").write_text(json.dumps(manifest))
    elif how == "missing model":
        (into / "model.npz").unlink()
    return into


def test_the_two_versions_score_differently(models):
    v1, v2 = models
    assert probe_score(v1) != probe_score(v2)


def test_a_moved_symlink_goes_live_on_the_next_check(models, tmp_path):
    v1, v2 = models
    link = tmp_path / "production"
    publish(link, v1)
    watcher = ModelWatcher(link, check_interval=3600)
    first = watcher.scorer
    assert watcher.target == str(v1) == first.path
    publish(link, v2)
    assert watcher.maybe_reload() is False and watcher.scorer is first       # not due for an hour
    assert watcher.maybe_reload(force=True) is True
    assert watcher.target == str(v2) == watcher.scorer.path and watcher.reloads == 1
    assert watcher.scorer.score_request(*PROBE).score == probe_score(v2)
    assert watcher.maybe_reload(force=True) is False                          # unchanged: nothing to do


def test_check_interval_zero_checks_on_every_call(models, tmp_path):
    v1, v2 = models
    link = tmp_path / "production"
    publish(link, v1)
    watcher = ModelWatcher(link, check_interval=0)
    publish(link, v2)
    assert watcher.maybe_reload() is True and watcher.target == str(v2)


def test_a_plain_directory_reloads_when_its_manifest_changes(models, tmp_path):
    v1, _ = models
    directory = shutil.copytree(v1, tmp_path / "model")
    watcher = ModelWatcher(directory, check_interval=0)
    first = watcher.scorer
    assert watcher.maybe_reload() is False
    manifest = directory / "manifest.json"
    stat = manifest.stat()
    os.utime(manifest, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert watcher.maybe_reload() is True and watcher.scorer is not first


@pytest.mark.parametrize("how", ["flipped byte", "other feature spec", "missing model"])
def test_a_broken_version_keeps_the_old_scorer_until_a_good_one_arrives(models, tmp_path, how):
    v1, v2 = models
    link = tmp_path / "production"
    publish(link, v1)
    watcher = ModelWatcher(link, check_interval=0)
    first = watcher.scorer
    publish(link, corrupt_copy(v2, tmp_path / "broken", how))
    assert watcher.maybe_reload(force=True) is False
    assert watcher.scorer is first and watcher.target == str(v1)
    assert watcher.last_error.startswith("ArtifactError") and watcher.reload_failures == 1
    for _ in range(3):                                                        # the same broken target: not retried
        assert watcher.maybe_reload(force=True) is False
    assert watcher.reload_failures == 1
    assert watcher.scorer.score_request(*PROBE).score == probe_score(v1)
    publish(link, v2)
    assert watcher.maybe_reload() is True and watcher.target == str(v2) and watcher.last_error is None


def test_a_dangling_link_keeps_the_old_scorer(models, tmp_path):
    v1, _ = models
    link = tmp_path / "production"
    publish(link, v1)
    watcher = ModelWatcher(link, check_interval=0)
    publish(link, tmp_path / "not-there")
    assert watcher.maybe_reload() is False and watcher.target == str(v1) and "missing" in watcher.last_error


def test_the_first_load_must_succeed(models, tmp_path):
    broken = corrupt_copy(models[0], tmp_path / "broken", "flipped byte")
    with pytest.raises(ArtifactError, match="sha256"):
        ModelWatcher(broken)
    with pytest.raises(ValueError, match="check_interval"):
        ModelWatcher(models[0], check_interval=-1)


def test_scorer_options_reach_every_version(models, tmp_path):
    v1, v2 = models
    link = tmp_path / "production"
    publish(link, v1)
    watcher = ModelWatcher(link, fail_open=False, max_body_bytes=16)
    publish(link, v2)
    watcher.maybe_reload(force=True)
    assert (watcher.scorer.fail_open, watcher.scorer.max_body_bytes) == (False, 16)


def test_eight_threads_scoring_through_swaps_see_one_whole_model_at_a_time(models, tmp_path):
    v1, v2 = models
    expected = {str(v1): probe_score(v1), str(v2): probe_score(v2)}
    link = tmp_path / "production"
    publish(link, v1)
    watcher = ModelWatcher(link, check_interval=0)     # the scoring threads reload too, as the middleware does
    broken = corrupt_copy(v2, tmp_path / "broken", "flipped byte")
    stop = threading.Event()
    seen, failures = [], []

    def score_in_a_loop():
        mine = []
        try:
            while not stop.is_set():
                watcher.maybe_reload()
                scorer = watcher.scorer
                result = scorer.score_request(*PROBE)
                mine.append((scorer.path, result.score, result.score_class))
        except Exception as error:  # the test's point: there must be none
            failures.append(error)
        seen.extend(mine)

    threads = [threading.Thread(target=score_in_a_loop) for _ in range(8)]
    for thread in threads:
        thread.start()
    try:
        for target in (v2, v1, broken, v2, v1, v2):
            time.sleep(0.05)
            publish(link, target)
            watcher.maybe_reload(force=True)
            assert watcher.target == str(v1 if target == broken else target)
        time.sleep(0.05)
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
    assert not failures
    assert len(seen) > 100
    assert all(score == expected[path] and 0 < score <= 1 and klass != "error" for path, score, klass in seen)
    assert {path for path, _, _ in seen} == set(expected)
    assert watcher.reloads == 5 and watcher.reload_failures == 1


def test_the_middleware_follows_the_watcher(models, tmp_path):
    v1, v2 = models
    link = tmp_path / "production"
    publish(link, v1)
    watcher = ModelWatcher(link, check_interval=0)

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    middleware = WaflensWSGIMiddleware(app, watcher, mode="monitor")

    def score_header():
        headers = {}
        environ = {"REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": "/search",
                   "QUERY_STRING": PROBE[1].partition("?")[2], "HTTP_USER_AGENT": PROBE[2]["User-Agent"]}
        b"".join(middleware(environ, lambda status, h, exc_info=None: headers.update(h)))
        return float(headers["X-Waflens-Score"])

    assert score_header() == pytest.approx(probe_score(v1), abs=1e-4)
    publish(link, v2)
    assert score_header() == pytest.approx(probe_score(v2), abs=1e-4)
