"""The online feature kernel against the reference definitions (and so against the SQL)."""

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from waflens.data.feature_spec import feature_names, reference_request_features, sql_parameters
from waflens.runtime.kernels.request import N_REQUEST_FEATURES, build_token_tables, request_features, url_decode
from waflens.data.url_decoding import url_decode as reference_url_decode

TABLES = build_token_tables(sql_parameters())
NAMES = feature_names("request")


def online(method, path, query, body, user_agent, referer):
    encode = lambda s: np.frombuffer((s or "").encode("utf-8", "surrogatepass"), np.uint8)  # noqa: E731
    out = np.zeros(N_REQUEST_FEATURES)
    code = {"GET": 0, "POST": 1, "HEAD": 2}.get(method, 3)
    request_features(code, encode(path), encode(query), encode(body), encode(user_agent),
                     bool(referer) and referer != "-", *TABLES, out)
    return dict(zip(NAMES, out))


def assert_matches_reference(*fields):
    expected = reference_request_features(*fields)
    got = online(*fields)
    for name in NAMES:
        assert math.isclose(got[name], expected[name], rel_tol=1e-9, abs_tol=1e-9), (name, expected[name], got[name], fields)


def test_spec_and_kernel_have_the_same_width():
    assert len(NAMES) == N_REQUEST_FEATURES


def test_hand_picked_requests():
    assert_matches_reference("GET", "/shop/item.php", "id=1%27%20UNION%20SELECT%20pass--&x=%252e", None,
                             "sqlmap/1.7", "-")
    assert_matches_reference("POST", "/tienda1/publico/anadir.jsp", "", "id=3&B1=A%F1adir+al+carrito",
                             "Mozilla/5.0 (compatible; Konqueror/3.5)", None)
    assert_matches_reference(None, "/../../etc/passwd%00.png", "a=%%41&b=${jndi:ldap://x}", "", "", "http://r/")
    assert_matches_reference("PROPFIND", "/caf\\xe9/%E2%82", "q=%C3%A9+%ZZ&", "<script>alert(1)</script>",
                             "  curl/8 ", "x")


url_text = st.lists(st.sampled_from(list("aZ09%25+&=?/.'\"<>;|$(){}#\\é\x00 ") + ["%F1", "%C3%A9", "%2e", "%252e",
                                                                                 "union", "../", "<script"]),
                    max_size=30).map("".join)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(["GET", "POST", "HEAD", "PUT", None]), url_text, url_text, url_text,
       st.text(max_size=30), st.sampled_from([None, "", "-", "http://x/"]))
def test_kernel_matches_reference_on_generated_requests(method, path, query, body, user_agent, referer):
    user_agent = user_agent.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    assert_matches_reference(method, path, query, body, user_agent, referer)


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=40), st.booleans())
def test_url_decode_matches_reference(text, plus):
    text = text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    got = bytes(url_decode(np.frombuffer(text.encode(), np.uint8), plus)).decode("utf-8")
    assert got == reference_url_decode(text, plus)
