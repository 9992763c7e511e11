"""Structural novelty counts on real traffic: a model trained on CSIC 2010 benign requests flags
backup files, rare methods and unknown parameter names (issue B2), and the runtime's score
equals the batch and explained paths to 1e-9."""

import numpy as np
import pytest

from waflens.runtime.artifact import ArtifactError
from waflens.runtime.scorer import Scorer
from tests.scoring.artifact_tamper import tampered
from tests.scoring.conftest import csic_requests as _requests

def _result(scorer, headers, method, target, body=""):
    return scorer.score_request(method, target, headers, body, explain=True)


@pytest.mark.parametrize("method, target, evidence", [
    ("GET", "/tienda1/miembros/index.jsp.old", "unknown endpoint (method + path)"),
    ("GET", "/tienda1/publico/anadir.jsp.BAK", "unknown endpoint (method + path)"),
    ("GET", "/tienda1/miembros/index.jsp.inc", "file extension outside the known lists"),
    ("PUT", "/tienda1/publico/caracteristicas.jsp?id=2", "rare HTTP method"),
    ("GET", "/tienda1/publico/caracteristicas.jsp?idA=2", "unknown parameter name"),
    ("GET", "/tienda1/publico/autenticar.jsp?modo=entrar&login=grimshaw&pwd=84m3ri156&rememberA=on&B1=Entrar",
     "unknown parameter name"),
])
def test_structural_novelty_reaches_likely_attack(csic, method, target, evidence):
    scorer, headers, _ = csic
    result = _result(scorer, headers, method, target)
    assert result.score_class in ("likely_attack", "attack"), (result.score, scorer._thresholds)
    assert evidence in [name for name, _, _ in result.explanation]


def test_explanations_name_the_unknown_parameters(csic):
    scorer, headers, _ = csic
    hostile = "x<script>\r\n" + "y" * 100
    result = _result(scorer, headers, "POST", "/tienda1/publico/autenticar.jsp?modo=entrar&rememberA=on",
                     f"login=a&{hostile}=1")
    named = [name for name, _, _ in result.explanation if name.startswith("unknown parameter '")]
    assert named[0] == "unknown parameter 'rememberA'"
    assert named[1] == "unknown parameter " + repr(hostile[:40] + "...")  # shortened, control characters escaped
    assert "\r" not in "".join(named)


def test_known_requests_stay_below_likely_attack(csic):
    scorer, headers, _ = csic
    for target in ("/tienda1/publico/caracteristicas.jsp?id=2", "/tienda1/index.jsp", "/tienda1/miembros/index.jsp",
                   "/tienda1/publico/autenticar.jsp?modo=entrar&login=grimshaw&pwd=84m3ri156&remember=on&B1=Entrar"):
        result = _result(scorer, headers, "GET", target)
        assert result.score_class in ("clean", "likely_clean"), (target, result)
        assert not scorer.evidence(scorer.request_features("GET", target, headers))


def test_runtime_equals_batch_and_explained_scores(csic, shared_datasets):
    scorer, _, _ = csic
    picked = _requests(shared_datasets / "validation" / "csic2010_anomalousTrafficTest_dev.txt.gz")[::80] + \
        _requests(shared_datasets / "validation" / "csic2010_normalTrafficTest_dev.txt.gz")[::200]
    rows = np.array([scorer.request_features(r.method, r.target, r.headers, r.body) for r in picked])
    one = np.array([scorer.score_request(r.method, r.target, r.headers, r.body).score for r in picked])
    np.testing.assert_allclose(one, scorer.score_batch(rows), rtol=0, atol=1e-9)
    np.testing.assert_allclose(one, [scorer.score_features(row) for row in rows], rtol=0, atol=1e-9)
    assert any(scorer.evidence(row) for row in rows) and (one <= 1).all()


def test_structural_weights_and_code_model_are_checked(csic, tmp_path):
    _, _, model = csic
    bad = tampered(model, tmp_path / "nan", arrays=lambda a: a.update(structural_surprise=np.full(5, np.nan)))
    with pytest.raises(ArtifactError, match="structural_surprise"):
        Scorer.load(bad)
    bad = tampered(model, tmp_path / "shape", arrays=lambda a: a.update(score_shape=a["score_shape"][::-1].copy()))
    with pytest.raises(ArtifactError, match="score_shape"):
        Scorer.load(bad)

    def older(manifest):  # a model exported before code-likeness: one feature fewer, no code model
        manifest["feature_spec"].pop("code_features")
        manifest["feature_spec"]["names"].pop()
    with pytest.raises(ArtifactError, match="predates code-likeness.*retrain"):
        Scorer.load(tampered(model, tmp_path / "older", manifest=older))


def test_the_model_card_lists_the_structural_evidence(csic):
    import json
    from types import SimpleNamespace

    from waflens.scoring.model_card import model_card

    _, _, model = csic
    manifest = json.loads((model / "manifest.json").read_text())
    evidence = manifest["model"]["structural_evidence"]
    assert evidence["unknown parameter name"]["weight"] > 0 and evidence["unknown parameter name"]["met_in_training"] >= 0
    info = SimpleNamespace(version="v1", created_at="now", parent=None, training={})
    card = model_card(info, manifest, manifest,
                      {"metrics": {}, "gates": [], "shadow": {"compared": False, "reason": "first"}}, {}, {})
    assert "Structural evidence added to request scores" in card and "unknown parameter name" in card


_CART = "/tienda1/publico/anadir.jsp?id=1&nombre=Vino+Rioja&precio=100&cantidad=9&B1=A%F1adir+al+carrito"


@pytest.mark.parametrize("find, replace, named", [
    ("Vino+Rioja", "Vino+.*%3FRioja", "enumerated parameter: 'nombre' never held '*', '.', '?'"),
    ("id=1", "id=1%2520", "enumerated parameter: 'id' never held '%'"),
    ("cantidad=9", "cantidad=9%2B", "numeric parameter: 'cantidad' never held '+'"),
])
def test_new_character_classes_lift_altered_values_and_stay_unusual(csic, find, replace, named):
    """CSIC's altered values: ordinary values with punctuation put in. The new classes lift them above the
    value they were made from, name the parameter and the classes, and without code evidence stay below
    likely_attack (unusual is not attack)."""
    from waflens.runtime.kernels.score import code_evidence

    scorer, headers, _ = csic
    known, altered = _result(scorer, headers, "GET", _CART), _result(scorer, headers, "GET", _CART.replace(find, replace))
    assert altered.score > known.score + 0.05, (known, altered)
    names = [name for name, _, _ in altered.explanation]
    assert names[:2] == ["unusual, no attack evidence", f"character class new to a {named}"], names
    row = scorer.request_features("GET", _CART.replace(find, replace), headers)
    structural = [name for name, _ in scorer.evidence(row) if not name.startswith("character class new to")]
    assert not structural and code_evidence(row, scorer._shape) == 0
    assert altered.score < scorer._thresholds[1], altered


def test_passwords_training_only_saw_redacted_bring_no_class_evidence(csic):
    """Ingest stores pwd as "[redacted]": a live password's digits or accents are no news."""
    scorer, headers, _ = csic
    target = "/tienda1/publico/autenticar.jsp?modo=entrar&login=grimshaw&pwd=Ep%F3n1m0%2A&remember=on&B1=Entrar"
    row = scorer.request_features("GET", target, headers)
    assert not [name for name, _ in scorer.evidence(row) if name.startswith("character class new to")]
    assert scorer._novel_classes("GET", target, b"") == []
