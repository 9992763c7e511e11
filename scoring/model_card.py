"""The model card of a registered version (Markdown, ``MODEL_CARD.md`` in its directory).

Only our own values go into it (numbers, version ids, feature and family names,
gate details we wrote): no string from the traffic, so it can be rendered as
Markdown by the workbench without escaping.
"""

from __future__ import annotations


def _number(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def model_card(info, request_manifest: dict, session_manifest: dict, evaluation: dict, drift: dict,
               labels: dict) -> str:
    feedback = session_manifest.get("feedback")
    training = info.training or {}
    lines = [
        f"# waflens model {info.version}",
        "",
        f"Created {info.created_at} from parent {info.parent or '(none: first version)'}.",
        "",
        "## Intended use",
        "Scoring web requests (`request/`) and client sessions as they unfold (`session/`) in a WAF worker with",
        "`waflens.runtime.scorer.Scorer` / `SessionScorer`; higher scores are more anomalous. Session score classes",
        "(clean, likely_clean, likely_attack, attack) start at the training median plus 2, 3.5 and 5 MADs;",
        "request classes are calibrated on held-out training folds (see Data).",
        "It ranks traffic for analysts and rate limits; it is not a signature WAF and should not be the",
        "only control in front of an application.",
        "",
        "## Data",
        f"- Training window: up to {training.get('until') or 'the latest traffic'} "
        f"({_number(training.get('requests'))} requests, {_number(training.get('sessions'))} sessions).",
        f"- Held out for the gates: sessions starting at or after {training.get('until') or '— (no timestamps)'}.",
        f"- Request features: {len(request_manifest['feature_spec']['names'])} (spec "
        f"{request_manifest['feature_spec']['version']}), including per-endpoint/parameter profile deviations.",
        *_structural_lines(request_manifest),
        *_calibration_lines(request_manifest),
        f"- Session features: {len(session_manifest['feature_spec']['names'])}.",
        *_bot_score_lines(session_manifest),
        "",
        "## Labels used",
        f"- Analyst label events: {labels.get('analyst_events', 0)} (up to event {labels.get('last_label_event_id', 0)});"
        f" allowlist rules: {labels.get('allowlist_rules', 0)}.",
    ]
    if feedback:
        per_class = ", ".join(f"{name} {count}" for name, count in feedback["sessions_per_class"].items())
        lines += [f"- Feedback model: {feedback['kind']} over classes ({per_class} sessions), blended as "
                  f"`{feedback['blend']}`."]
    else:
        lines += ["- No confirmed labels: the session model is the unsupervised isolation forest alone."]
    lines += ["", "## Metrics", "| metric | value |", "|---|---:|"]
    for name, value in sorted(evaluation["metrics"].items()):
        lines.append(f"| {name} | {_number(value)} |")
    for level, manifest in (("request", request_manifest), ("session", session_manifest)):
        thresholds = manifest["thresholds"]
        lines.append(f"| {level} likely_attack threshold | {_number(thresholds['likely_attack'])} |")
    alert = evaluation.get("alert_rate") or {}
    lines.append(f"| latest-window alert rate (candidate / production) | {_number(alert.get('candidate'))} / "
                 f"{_number(alert.get('production'))} |")
    lines += ["", "## Gates", "| gate | result | value | limit | detail |", "|---|---|---:|---:|---|"]
    for g in evaluation["gates"]:
        result = {True: "passed", False: "**failed**", None: "skipped"}[g["passed"]]
        lines.append(f"| {g['name']} | {result} | {_number(g['value'])} | {_number(g['limit'])} | {g['detail']} |")
    shadow = evaluation["shadow"]
    lines += ["", "## Shadow run (latest window)"]
    if shadow.get("compared"):
        lines.append(f"On {shadow['sessions']} sessions: {shadow['both_alert']} alert with both models, "
                     f"{shadow['new_alerts']} new alerts, {shadow['dropped_alerts']} dropped alerts.")
    else:
        lines.append(f"Not compared: {shadow.get('reason')}.")
    lines += ["", "## Drift (training window vs latest window)",
              f"Status: {drift.get('status')}; features by status: {drift.get('counts', {})}."]
    drifting = [f for f in drift.get("features", []) if f.get("status") in ("warn", "drift")]
    for feature in drifting[:10]:
        lines.append(f"- {feature['name']}: {feature['status']} (PSI {_number(feature.get('psi'))})")
    lines += ["", "## Known limits",
              "- Trained on this site's own traffic: attacks that were frequent in the training window look normal.",
              "- Access logs carry no bodies; a model trained on them ignores request bodies.",
              "- The feedback model knows only the families analysts confirmed; new campaigns rely on the forest.",
              "- The bot score's directions are priors about browsers and people, not learnt (labels only weigh them): "
              "bots that read like people (slow, link-following, asset-loading) score human until analysts label some.",
              ""]
    return "\n".join(lines)


def _structural_lines(request_manifest: dict) -> list[str]:
    """What never-seen structure adds to a request's score (see waflens.scoring.profiles.structural_weights)."""
    evidence = request_manifest.get("model", {}).get("structural_evidence")
    if not evidence:
        return ["- Structural evidence: none (a model from before it; novelty counts only through the forest)."]
    unusual = {name: e for name, e in evidence.items() if name.startswith("character class new to")}
    structural = {name: e for name, e in evidence.items() if name not in unusual}

    def listed(kinds: dict) -> str:
        return "; ".join(f"{name} {_number(e['weight'])} ({e['met_in_training']})" for name, e in kinds.items())

    lines = ["- Structural evidence added to request scores (weight; times training met it out of fold): " +
             listed(structural) + "."]
    if unusual:
        lines.append("- Character classes a parameter never carried, pooled by parameter kind and weighed the same "
                     "way, added to the forest's score before its bend (unusual, not attack: on their own they stay "
                     "below likely_attack; parameters training saw only redacted are left out): " + listed(unusual) + ".")
    return lines


def _bot_score_lines(session_manifest: dict) -> list[str]:
    """How the session model's bot score is made (scoring/bot_score.py)."""
    bot = session_manifest.get("bot_score")
    if not bot:
        return ["- Bot score: none (a model from before it)."]
    evidence = "; ".join(f"{e['feature']} ({e['automation']}" + (f", weight {_number(e['weight'])}" if "weight" in e
                                                                    else "") + ")" for e in bot.get("evidence", []))
    return ["- Bot score per session, 1..99, low = automated (as Cloudflare's): each behavioural feature's mid-rank "
            "among the training sessions, oriented to the side automation pushes it, combined by Stouffer's method; "
            "with analyst labels, weighted by how well each feature separates the labelled people from the labelled "
            "bots, and averaged with the feedback model's p(benign) + p(unlabelled) / 2. Reasons: the "
            "features beyond 80% of training sessions on the automated side. Evidence (automation shows as): "
            + evidence + "."]


def _calibration_lines(request_manifest: dict) -> list[str]:
    """How the request classes were set (see waflens.scoring.calibration)."""
    model = request_manifest.get("model", {})
    calibration, code = model.get("calibration"), model.get("code_model") or {}
    if not calibration:
        return []
    shares = calibration.get("held_out_share_by_class", {})
    return [
        "- Request classes: calibrated on held-out folds of the training requests (each scored by a forest fitted "
        f"without its fold, profiles out of fold; {_number(calibration.get('held_out_requests'))} requests, "
        f"{_number(calibration.get('set_aside_as_code_like'))} set aside as code-like). likely_attack is at least "
        "the ceiling that unusualness alone approaches but never reaches, and the 99th percentile of held-out "
        "scores; attack at least the 99.9th. Held-out share at likely_attack "
        f"{_number(shares.get('likely_attack'))}, at attack {_number(shares.get('attack'))}.",
        "- Unusual is not attack: a request reaches likely_attack only with structural evidence or a code-like "
        f"value (code-likeness evidence from logit {_number(calibration.get('code_start'))} to "
        f"{_number(calibration.get('code_full'))}, weight {_number(calibration.get('code_weight'))}; code model: "
        f"{code.get('model', '?')}, fitted on {code.get('attacks', '?')} vs {code.get('benign', '?')}).",
    ]
