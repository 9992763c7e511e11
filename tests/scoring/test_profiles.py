"""Endpoint and parameter profiles: what they flag, and that out-of-fold deviations are informative."""

import numpy as np

from waflens.runtime.kernels.profile import NOVEL_CLASS_FEATURE_NAMES, PROFILE_FEATURE_NAMES, VALUE_KIND_NAMES
from waflens.scoring.profiles import deviations, encode_request, fit_profiles, out_of_fold_deviations


def _training():
    rng = np.random.default_rng(0)
    requests = [encode_request("GET", f"/item/{rng.integers(1, 10**6)}", f"id={rng.integers(1, 999)}&color={c}", None)
                for c in rng.choice(["red", "blue"], size=200)]
    requests += [encode_request("POST", "/login", "", f"user=u{rng.integers(100)}&pass=p{rng.integers(1000)}")
                 for _ in range(50)]
    return requests


def _deviation(tables, method, path, query, body=None):
    return dict(zip(PROFILE_FEATURE_NAMES, deviations([encode_request(method, path, query, body)], tables)[0]))


def test_normal_requests_do_not_deviate():
    tables = fit_profiles(_training())
    d = _deviation(tables, "GET", "/item/77", "id=5&color=red")     # numeric segment generalised
    assert all(v <= 0 for k, v in d.items() if k != "max_length_z"), d
    assert _deviation(tables, "POST", "/login", "", "user=u3&pass=p9")["max_novel_bytes"] == 0


def test_each_kind_of_deviation_is_flagged():
    tables = fit_profiles(_training())
    injected = _deviation(tables, "GET", "/item/5", "id=1%27%20OR%201%3D1--&color=red")
    assert injected["max_novel_bytes"] >= 5 and injected["max_novel_share"] > 0.3
    assert injected["max_length_excess"] > 0
    assert _deviation(tables, "GET", "/item/5", "id=1&color=green")["enum_violations"] == 1
    assert _deviation(tables, "GET", "/item/5", "id=1&color=red&debug=1")["unknown_params"] == 1
    unknown = _deviation(tables, "GET", "/admin/config.php", "x=1")
    assert unknown["endpoint_unknown"] == 1 and unknown["unknown_params"] == 1
    assert _deviation(tables, "POST", "/item/5", "id=1")["endpoint_unknown"] == 1   # method is part of the endpoint


def test_out_of_fold_deviations_are_mostly_small_for_normal_traffic():
    oof = out_of_fold_deviations(_training(), folds=5)
    assert oof.shape == (250, len(PROFILE_FEATURE_NAMES) + len(NOVEL_CLASS_FEATURE_NAMES))
    assert np.mean(oof[:, 0]) < 0.05            # endpoints are known out of fold
    assert np.mean(oof[:, 4] > 0) < 0.5         # most values bring no new bytes


def test_training_calls_the_kernel_with_the_runtime_types():
    """profile_deviations compiled once for training's bool tables and again for the artifact's uint8 ones
    (~4 CPU-s each, cold): training hands the same 0/1 bytes as uint8, so one compiled kernel serves both."""
    import inspect

    from waflens.runtime.kernels.profile import profile_deviations

    tables = fit_profiles(_training())
    before = _deviation(tables, "GET", "/item/5", "id=1%27%20OR%201%3D1--&color=green")
    parameters = list(inspect.signature(profile_deviations.py_func).parameters)
    for name in ("seen_bytes", "is_enum"):
        used = {str(signature[parameters.index(name)].dtype) for signature in profile_deviations.signatures}
        assert used == {"uint8"}, (name, used)
    assert tables.seen_bytes.dtype == np.bool_  # the tables themselves are unchanged
    assert before["enum_violations"] == 1 and before["max_novel_bytes"] >= 5


def _novel(tables, method, path, query, body=None):
    row = deviations([encode_request(method, path, query, body)], tables)[0, len(PROFILE_FEATURE_NAMES):]
    return dict(zip(VALUE_KIND_NAMES, row))


def test_parameters_get_a_kind_from_what_they_carried():
    rng = np.random.default_rng(1)
    requests = [encode_request("POST", "/form", "", f"qty={rng.integers(1, 99)}&mode={m}&user=u{rng.integers(99)}.x"
                               f"&note=a+{'b' * int(rng.integers(1, 40))}+c") for m in rng.choice(["a", "b"], size=60)]
    tables = fit_profiles(requests)
    # qty numeric, mode enumerated, user word-like (no space), note free text
    assert [VALUE_KIND_NAMES[k] for k in tables.value_kind] == ["numeric", "enumerated", "word-like", "free-text"]
    same = _novel(tables, "POST", "/form", "", "qty=5&mode=a&user=zq7.y&note=zz+y")
    assert all(v == 0 for v in same.values()), same  # other letters and digits are no new class
    assert _novel(tables, "POST", "/form", "", "user=Q9.x")["word-like"] == 1  # upper-case letters are
    altered = _novel(tables, "POST", "/form", "", "qty=1%2520&mode=b&user=c/?a,ry&note=a+b")
    assert altered == {"enumerated": 0, "numeric": 1, "word-like": 3, "free-text": 0}  # '%'; '/', '?', ','
    assert _novel(tables, "POST", "/form", "", "qty=9+")["numeric"] == 1  # (a space)
    assert _novel(tables, "POST", "/form", "", "mode=a.&note=Vino+.*?Rioja") == {
        "enumerated": 1, "numeric": 0, "word-like": 0, "free-text": 4}  # upper-case, '.', '*', '?'
    assert _novel(tables, "POST", "/form", "", "fresh=1%25&qty=")["numeric"] == 0  # unknown parameters: not here


def test_a_parameter_training_only_saw_masked_brings_no_news():
    """Ingest stores a password as "[redacted]": live passwords carry classes that marker never had, and that
    is no news about them."""
    from waflens.runtime.kernels.profile import NOT_PROFILED

    requests = [encode_request("POST", "/login", "", f"user=u{i % 50}&pwd=[redacted]") for i in range(60)]
    tables = fit_profiles(requests)
    assert list(tables.value_kind) == [2, NOT_PROFILED]  # user word-like; pwd not profiled
    assert all(v == 0 for v in _novel(tables, "POST", "/login", "", "user=u7&pwd=S3cret!%27").values())
    assert _novel(tables, "POST", "/login", "", "user=u7%27&pwd=x")["word-like"] == 1
