"""Fuzzing the loader: random edits of real artifacts, every hash recomputed, are either refused with an
ArtifactError or load and score in [0, 1] — never another exception, a crash or a hang.

The loop runs in a subprocess, so a SIGSEGV fails this test instead of killing pytest, and a hang hits the
timeout. Seeded: a failure names the seed and the edit, and reproduces.
"""

import json

from tests.conftest import REPO_ROOT
from tests.scoring.artifact_tamper import run_isolated

SEED = 20261202
EDITS = 120          # about 8 s on a shared 2-core machine (20 s at a load of 10)
TIMEOUT = 120

FUZZER = r'''
import copy, io, json, random, sys, traceback
from pathlib import Path

import numba
import numpy as np

from waflens.runtime.artifact import ArtifactError
from waflens.runtime.scorer import Scorer, SessionScorer
from tests.scoring.artifact_tamper import MANIFEST, MODEL, arrays_of, reseal

request, session, work, seed, edits = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
rng = random.Random(seed)
numba.set_num_threads(1)  # score_batch's parallel loop waits for every thread: slow on a busy machine, and not tested here
VALUES = [0, 1, -1, 2, -2**31, 2**31 - 1, 2**62, 255, 256, 10**6, 0.5, 1e300, -1e300, float("nan"), float("inf"),
          float("-inf"), 1e-300]
DTYPES = ["int8", "uint8", "int32", "int64", "float32", "float64", "bool", ">i4", ">i8", ">f8", "<U3"]
ODD = [float("nan"), float("inf"), -1, 0, 2, 0.0, 1.0, 1e-300, "0.5", None, [], {}, True, "x" * 3, 10**400 // 10**399]
REQUESTS = [("GET", "/"), ("GET", "/search?q=shoes%27%20UNION%20SELECT%201--&page=2"), ("POST", "/login"),
            ("GET", "/api/v1/reviews?product=12&sort=new"), ("HEAD", "/static/css/main.3f9a1c.css"),
            ("GET", "/../../etc/passwd?x=%00%ff"), (None, "http://h/a?b=" + "A" * 3000)]


def edit_array(arrays, description):
    name = rng.choice(sorted(arrays))
    a = arrays[name]
    kind = rng.choice(["set", "set", "set", "dtype", "shape", "drop", "swap", "permute"])
    description.append(f"{kind} {name}")
    if kind == "set" and a.size:
        flat = a.reshape(-1).copy()
        for _ in range(rng.choice([1, 1, 3, 50])):
            value = rng.choice(VALUES + [rng.randrange(-5, max(6, a.size + 5))])
            try:
                with np.errstate(all="ignore"):
                    flat[rng.randrange(flat.size)] = np.array(value).astype(a.dtype)
            except (OverflowError, ValueError):
                pass
        arrays[name] = flat.reshape(a.shape)
    elif kind == "dtype":
        with np.errstate(all="ignore"):
            arrays[name] = a.astype(rng.choice(DTYPES))
    elif kind == "shape":
        change = rng.choice(["shorter", "longer", "2-d", "0-d", "empty"])
        description.append(change)
        flat = a.reshape(-1)
        arrays[name] = {"shorter": flat[:-1], "longer": np.concatenate([flat, flat[:1]]), "2-d": flat.reshape(1, -1),
                        "0-d": flat[:1].reshape(()) if flat.size else np.array(0, a.dtype), "empty": flat[:0]}[change]
    elif kind == "drop":
        del arrays[name]
    elif kind == "swap":
        other = rng.choice(sorted(arrays))
        description.append(f"with {other}")
        arrays[name] = arrays[other].copy()
    elif kind == "permute" and a.ndim:
        arrays[name] = a[np.random.default_rng(rng.randrange(2**32)).permutation(a.shape[0])]


def edit_manifest(manifest, description):
    target = rng.choice(["thresholds", "thresholds", "spec", "training", "feedback", "top"])
    description.append(f"manifest {target}")
    if target == "thresholds":
        key = rng.choice(["likely_clean", "likely_attack", "attack"])
        if rng.random() < 0.2:
            manifest["thresholds"].pop(key)
        else:
            manifest["thresholds"][key] = rng.choice(ODD)
    elif target == "spec":
        spec = manifest["feature_spec"]
        what = rng.choice(["version", "names", "names-drop", "token", "token-type", "group", "lists"])
        description.append(what)
        if what == "version":
            spec["version"] = rng.choice(ODD)
        elif what == "names":
            rng.shuffle(spec["names"])
        elif what == "names-drop":
            spec["names"].pop()
        elif what in ("token", "token-type"):
            group = rng.choice(sorted(spec["lists"]))
            spec["lists"][group].append("" if what == "token" else rng.choice(ODD))
        elif what == "group":
            spec["lists"].pop(rng.choice(sorted(spec["lists"])))
        else:
            spec["lists"] = rng.choice(ODD)
    elif target == "training":
        key = rng.choice(["body_share", "gap_seconds"])
        manifest["training"][key] = rng.choice(ODD)
    elif target == "feedback":
        feedback = manifest.get("feedback")
        if isinstance(feedback, dict) and rng.random() < 0.7:
            key = rng.choice(["n_outputs", "classes"])
            feedback[key] = rng.choice(ODD + [["a"], ["a", "b"], ["a", "b", "c", "d"]])
        else:
            manifest["feedback"] = rng.choice(ODD + [{"classes": ["a", "b"], "n_outputs": 1}])
    else:
        key = rng.choice(["schema_version", "level", "files", "feature_spec", "thresholds", "training"])
        if rng.random() < 0.3:
            manifest.pop(key, None)
        else:
            manifest[key] = rng.choice(ODD)


def edit_bytes(data, description):
    kind = rng.choice(["truncate", "flip", "append"])
    description.append(kind)
    if kind == "truncate":
        return data[: rng.randrange(len(data))]
    if kind == "flip":
        flipped = bytearray(data)
        flipped[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        return bytes(flipped)
    return data + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))


def exercise(scorer, level):
    scores = []
    for i, (method, target) in enumerate(REQUESTS):
        if level == "request":
            scores.append(scorer.score_request(method, target, {"User-Agent": "fuzz"}, b"a=1&b=%27").score)
            scores.append(scorer.score_request(method, target, {"User-Agent": "x"}, explain=True).score)
        else:
            scores.append(scorer.score_request(method, target, {"User-Agent": "fuzz"}, b"", client=("c",), ts=float(i)).score)
    rows = np.random.default_rng(0).gamma(1.0, 5.0, size=(130, len(scorer.feature_names)))  # a block and a tail
    rows[0, 0], rows[1, 0], rows[2, 0] = np.nan, np.inf, -np.inf
    scores.extend(scorer.score_batch(rows).tolist())
    bad = [s for s in scores if not (0.0 <= s <= 1.0)]
    if bad or scorer.errors:
        raise AssertionError(f"scores outside [0, 1]: {bad[:3]}, scoring errors: {scorer.errors}")


def write(directory, arrays, manifest, model_bytes=None):
    """The edited artifact, re-sealed (what tampered() does, without reading the original again)."""
    directory.mkdir()
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    data = buffer.getvalue()
    (directory / MODEL).write_bytes(model_bytes(data) if model_bytes else data)
    (directory / MANIFEST).write_text(json.dumps(manifest))
    reseal(directory)
    return directory


originals = {level: (arrays_of(path), json.loads((path / MANIFEST).read_text()))
             for level, path in (("request", request), ("session", session))}
outcomes = {"refused": 0, "loaded": 0}
failures = []
for i in range(edits):
    level = rng.choice(["request", "session"])
    arrays, manifest = dict(originals[level][0]), copy.deepcopy(originals[level][1])
    description = [level]
    kind = rng.choice(["array", "array", "array", "manifest", "manifest", "bytes"])
    model_bytes = None
    if kind == "array":
        edit_array(arrays, description)
    elif kind == "manifest":
        edit_manifest(manifest, description)
    else:
        model_bytes = lambda data: edit_bytes(data, description)
    try:
        path = write(work / f"edit-{i}", arrays, manifest, model_bytes)
    except Exception as error:          # an edit the npz writer itself cannot store: not the loader's business
        outcomes["unwritable"] = outcomes.get("unwritable", 0) + 1
        last_unwritable = repr(error)
        continue
    try:
        scorer = Scorer.load(path, fail_open=False) if level == "request" else SessionScorer.load(path)
    except ArtifactError:
        outcomes["refused"] += 1
        continue
    except Exception:
        failures.append({"edit": i, "what": " / ".join(description), "error": traceback.format_exc(limit=3)})
        continue
    try:
        exercise(scorer, level)
        outcomes["loaded"] += 1
    except Exception:
        failures.append({"edit": i, "what": " / ".join(description) + " (loaded)", "error": traceback.format_exc(limit=3)})
print(json.dumps({**outcomes, "failures": failures, "last_unwritable": globals().get("last_unwritable")}))
'''


def test_random_edits_are_refused_or_score_in_range(artifact_models, tmp_path):
    request, _, session = artifact_models
    code = (f"import sys; sys.argv = ['fuzz', {str(request)!r}, {str(session)!r}, {str(tmp_path)!r}, '{SEED}', "
            f"'{EDITS}']\n" + FUZZER)
    result = run_isolated(code, TIMEOUT, cwd=REPO_ROOT)
    assert result is not None, f"the fuzzer hung (more than {TIMEOUT} s for {EDITS} edits, seed {SEED})"
    assert result.returncode == 0, f"the fuzzer died (exit {result.returncode}, seed {SEED}): {result.stderr[-3000:]}"
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert not outcome["failures"], json.dumps(outcome["failures"][:5], indent=1)
    # the edits must reach both sides: most are refused, some (a permuted table, a changed leaf) still load
    assert outcome["refused"] > EDITS // 3 and outcome["loaded"] > 5, outcome
