"""The structured output every summarizer returns, and its verification against the evidence."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from waflens.labeling.evidence import evidence_text
from waflens.labeling.taxonomy import FAMILIES


class Indicator(BaseModel):
    evidence: str = Field(description="an exact quote from the evidence")
    description: str


class Summary(BaseModel):
    title: str
    family: str = Field(description="one of the taxonomy's families")
    owasp: str | None = None
    capec: list[int] = []
    verdict: Literal["malicious", "suspicious", "benign"]
    confidence: float = Field(ge=0.0, le=1.0)
    summary: str
    indicators: list[Indicator] = []
    recommended_action: str
    prompt_injection_detected: bool = False
    status: Literal["ok", "unverified"] = "ok"


def verify(summary: Summary, pack: dict) -> Summary:
    """Fill the taxonomy mapping; an unknown family or an indicator not found verbatim in the evidence
    marks the summary unverified."""
    text = evidence_text(pack)
    family = FAMILIES.get(summary.family)
    verified = family is not None and all(i.evidence and i.evidence in text for i in summary.indicators)
    update = {"status": "ok" if verified else "unverified"}
    if family is not None:
        update.update(owasp=family.owasp, capec=list(family.capec))
    return summary.model_copy(update=update)
