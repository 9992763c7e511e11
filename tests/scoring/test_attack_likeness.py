"""Unusual is not attack (issue B2): the code-likeness tokenizer and model, and what a CSIC-trained model makes
of benign sentences in a free-text field and of short payloads in a numeric one."""

import json
from urllib.parse import quote_plus

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from waflens.runtime.artifact import ArtifactError
from waflens.runtime.kernels.code import (CLASS_NAMES, HTML_TAG, JNDI, JS_EVENT, MAX_TOKENS, N_BIGRAM_CLASSES, N_CLASSES,
                                 NUM, PHP_WRAPPER, SCHEME, SEMICOLON, SHELL_CMD, SQL_COMMENT, SQL_WEAK, TEMPLATE,
                                 TRAVERSAL, URL_ADDRESS, URL_HOST, URL_PARAM, URL_QUERY, URL_SLASH, URL_TEXT, WORD,
                                 ENCODED, _prepared, code_logit, tokenize)
from waflens.scoring.code_model import shipped_code_weights, value_matrix
from waflens.scoring.profiles import encode
from waflens.runtime.scorer import Scorer
from tests.scoring.artifact_tamper import tampered
from tests.scoring.conftest import csic_requests

# Ordinary sentences as a customer might type them into an address or comment field: punctuation, apostrophes,
# semicolons, ampersands, accents, and English words that are also SQL or shell words (select, from, or, union).
BENIGN_SENTENCES = (
    "Please leave the parcel with my neighbour; she's home all day.",
    "Ring twice at the back door, or call me from the front gate!",
    "Union Street 14, 2nd floor (ask for Mrs. O'Neill).",
    "I'd like to select a different delivery date - next Tuesday, if possible.",
    "Calle de Alcalá 42, 3º izq., Madrid: dejar en conserjería.",
    "Where are you from? We're near the old mill & the café.",
    "Drop off at reception, then text me: thanks a lot!",
    "Müller & Söhne GmbH, Königstraße 7; Lieferung bis 18 Uhr.",
)
REGISTRATION = "/tienda1/publico/registro.jsp"


def _classes(text: str) -> list[str]:
    """Token classes of a value as the model sees it (decoded once more when it holds escapes, spaces left out);
    a leading "leftover encoding" when that was double encoding."""
    out = np.empty(MAX_TOKENS, dtype=np.int64)
    prepared, double = _prepared(encode(text))
    n = tokenize(prepared, out)
    return ["leftover encoding"] * double + [CLASS_NAMES[c] for c in out[:n] if CLASS_NAMES[c] != "space"]


@pytest.mark.parametrize("value, expected", [
    (";id", [SEMICOLON, SHELL_CMD]),
    ("a; and b", [WORD, SEMICOLON, SQL_WEAK, WORD]),           # ';' is a separator, not a shell token by itself
    ("../../etc/passwd", [TRAVERSAL, TRAVERSAL, "sensitive file name", "slash", "sensitive file name"]),
    ("<script>", [HTML_TAG, "tag end"]),
    ("x onerror=1", [WORD, JS_EVENT, "equals sign", NUM]),
    ("${jndi:ldap", [TEMPLATE, JNDI, WORD]),
    ("php://filter", [PHP_WRAPPER, WORD]),
    ("1--", [NUM, SQL_COMMENT]),
    ("Café", [WORD]),                                          # accented letters are part of words
    # URLs: their own classes; code that leaves the URL (';', a quote) keeps its classes
    ("https://shop.example.com/cart?step=2&id=7#top", [SCHEME, URL_HOST, URL_SLASH, URL_TEXT, URL_QUERY, URL_TEXT,
                                                       URL_PARAM, URL_TEXT, URL_PARAM, URL_TEXT, URL_PARAM, URL_TEXT,
                                                       URL_QUERY, URL_TEXT]),
    ("http://198.51.100.23/shell.txt?", [SCHEME, URL_ADDRESS, URL_SLASH, URL_TEXT, URL_QUERY]),
    ("http://localhost:8080/", [SCHEME, URL_ADDRESS, URL_SLASH]),
    ("http://x.example/?a=1;id", [SCHEME, URL_HOST, URL_SLASH, URL_QUERY, URL_TEXT, URL_PARAM, URL_TEXT, SEMICOLON,
                                  SHELL_CMD]),
    ("http://x.example/../../etc", [SCHEME, URL_HOST, URL_SLASH, TRAVERSAL, TRAVERSAL, URL_TEXT]),
    ("http://x.example/?u=https%3A%2F%2Fy.example%2F", [SCHEME, URL_HOST, URL_SLASH, URL_QUERY, URL_TEXT, URL_PARAM,
                                                        URL_TEXT]),  # a URL's own escapes are URL text
    ("http://x.example/a.txt?%00", [SCHEME, URL_HOST, URL_SLASH, URL_TEXT, URL_QUERY, ENCODED]),  # ... not these
    ("http:%2F%2Fx.example%2F", [ENCODED, SCHEME, URL_HOST, URL_SLASH]),   # an encoded URL is decoded (twice)
    ("<a href=http://x.example/>", [HTML_TAG, "JS/DOM name", "equals sign", SCHEME, URL_HOST, URL_SLASH, "tag end"]),
])
def test_token_classes(value, expected):
    assert _classes(value) == [CLASS_NAMES[e] if isinstance(e, int) else e for e in expected]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_the_kernel_logit_equals_the_training_features_times_the_weights(value):
    weights, bias, _ = shipped_code_weights()
    z = code_logit(np.frombuffer(value, np.uint8), weights, bias, np.zeros(N_CLASSES, np.int64),
                   np.empty(MAX_TOKENS + 2, np.int64), np.empty(MAX_TOKENS + 1, np.int64),
                   np.zeros(N_BIGRAM_CLASSES ** 2, np.bool_))
    assert np.isfinite(z)
    assert abs(z - (value_matrix([value], np.float64) @ weights + bias)[0]) < 1e-9


def test_a_huge_value_is_bounded():
    weights, bias, _ = shipped_code_weights()
    assert np.isfinite(value_matrix(["' or 1=1 -- " * 20_000]) @ weights + bias).all()


@pytest.fixture(scope="module")
def registration(csic_training):
    """A CSIC registration request (POST with the free-text address field ``direccion``)."""
    return next(r for r in csic_training if r.target.endswith(REGISTRATION) and "direccion=" in r.body)


def _with_address(request, text: str) -> tuple:
    pieces = [f"direccion={quote_plus(text, encoding='latin-1', errors='xmlcharrefreplace')}"
              if p.startswith("direccion=") else p for p in request.body.split("&")]
    return request.method, request.target, request.headers, "&".join(pieces)


@pytest.mark.parametrize("sentence", BENIGN_SENTENCES)
def test_benign_sentences_in_a_free_text_field_stay_below_likely_attack(csic, registration, sentence):
    scorer, _, _ = csic
    result = scorer.score_request(*_with_address(registration, sentence), explain=True)
    assert result.score_class in ("clean", "likely_clean"), (result, scorer._thresholds)
    assert not any(name.startswith("code-like value") for name, _, _ in result.explanation)


def test_an_unusual_sentence_is_explained_as_unusual(csic, registration):
    scorer, _, _ = csic
    text = "Please deliver to the side entrance. The gate code is 4411, and the dog is friendly; knock loudly."
    result = scorer.score_request(*_with_address(registration, text), explain=True)
    assert result.score_class == "likely_clean" and result.score > scorer.score_request(*_with_address(
        registration, "Calle Mayor 3")).score
    assert result.explanation[0][0] == "unusual, no attack evidence"


@pytest.mark.parametrize("payload, evidence", [
    (";id", "semicolon"),
    ("../../etc/passwd", "sensitive file name"),
])
def test_short_payloads_in_a_numeric_parameter_reach_attack(csic, payload, evidence):
    scorer, headers, _ = csic
    target = f"/tienda1/publico/anadir.jsp?id=2&nombre=Queso+Manchego&precio=85&cantidad={quote_plus(payload)}" \
             "&B1=A%F1adir+al+carrito"
    result = scorer.score_request("GET", target, headers, explain=True)
    assert result.score_class == "attack", (result, scorer._thresholds)
    first = result.explanation[0][0]
    assert first.startswith("code-like value in parameter 'cantidad': ") and evidence in first


@pytest.mark.parametrize("url", [
    "https://shop.example.com/account/orders?page=2&sort=desc",
    "https://accounts.example.com/o/oauth2/auth?client_id=12.apps.example.com&redirect_uri=https%3A%2F%2Fapp.example"
    ".org%2Fcallback&response_type=code&state=af0ifjsldkj",
    "https://cdn.example.net/img/products/12345/front.jpg?w=640&h=480&fit=crop&q=80",
    "https://es.wikipedia.org/wiki/Espa%C3%B1a",
])
def test_a_url_in_a_free_text_field_is_not_code(csic, registration, url):
    """Redirect targets and shared links are data: slashes, '?' and '&' in a URL are not traversal or shell."""
    scorer, _, _ = csic
    result = scorer.score_request(*_with_address(registration, url), explain=True)
    assert result.score_class in ("clean", "likely_clean"), (result, scorer._thresholds)


@pytest.mark.parametrize("url", ["http://198.51.100.23/shell.txt?", "http://203.0.113.9:8080/x.php?&cmd=id"])
def test_remote_file_inclusion_in_a_numeric_parameter_reaches_likely_attack(csic, url):
    """A URL is not a whitelist: an address host and a query mark that ends the value are what RFI looks like."""
    scorer, headers, _ = csic
    target = f"/tienda1/publico/anadir.jsp?id=2&nombre=Queso+Manchego&precio=85&cantidad={quote_plus(url)}" \
             "&B1=A%F1adir+al+carrito"
    result = scorer.score_request("GET", target, headers, explain=True)
    assert result.score_class in ("likely_attack", "attack"), (result, scorer._thresholds)


def test_the_same_request_with_a_number_is_clean(csic):
    scorer, headers, _ = csic
    target = "/tienda1/publico/anadir.jsp?id=2&nombre=Queso+Manchego&precio=85&cantidad=3&B1=A%F1adir+al+carrito"
    assert scorer.score_request("GET", target, headers).score_class in ("clean", "likely_clean")


def test_classes_are_calibrated_on_held_out_traffic(csic, shared_datasets):
    """The manifest says how the thresholds were set, and on benign CSIC validation requests (never trained on)
    the shares at likely_attack and attack stay near the 1% and 0.1% they were calibrated for."""
    scorer, _, model = csic
    calibration = json.loads((model / "manifest.json").read_text())["model"]["calibration"]
    assert calibration["held_out_requests"] == 4000
    assert calibration["held_out_share_by_class"]["likely_attack"] <= 0.01
    assert calibration["held_out_share_by_class"]["attack"] <= 0.001
    benign = csic_requests(shared_datasets / "validation" / "csic2010_normalTrafficTest_dev.txt.gz")[::4]
    classes = [scorer.score_request(r.method, r.target, r.headers, r.body).score_class for r in benign]
    assert np.mean([c in ("likely_attack", "attack") for c in classes]) <= 0.02
    assert np.mean([c == "attack" for c in classes]) <= 0.005


def test_the_code_model_is_checked(csic, tmp_path):
    _, _, model = csic
    bad = tampered(model, tmp_path / "nan", arrays=lambda a: a["code_weights"].__setitem__(3, np.nan))
    with pytest.raises(ArtifactError, match="code_weights"):
        Scorer.load(bad)
    newer = tampered(model, tmp_path / "v", manifest=lambda m: m["model"]["code_model"].update(tokenizer_version=99))
    with pytest.raises(ArtifactError, match="tokenizer_version"):
        Scorer.load(newer)


def test_a_null_body_is_no_body():
    """DuckDB hands NULL back from fetchnumpy as numpy's masked constant; training once encoded it as eight NUL
    bytes, so every GET of an access log carried a NUL-byte "value" that the runtime never sees."""
    import duckdb

    from waflens.scoring.profiles import encode_request

    rows = duckdb.connect().execute("SELECT 'GET' AS method, '/a' AS path, 'q=1' AS query, NULL::VARCHAR AS body"
                                    ).fetchnumpy()
    request = encode_request(rows["method"][0], rows["path"][0], rows["query"][0], rows["body"][0])
    assert request.body.size == 0
