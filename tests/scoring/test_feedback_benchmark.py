"""benchmarks/feedback.py runs end to end at a tiny size and prints a well-formed table (no quality asserts)."""

import importlib.util
from pathlib import Path

import pytest

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "feedback.py"


@pytest.fixture(scope="module")
def feedback_benchmark():
    spec = importlib.util.spec_from_file_location("feedback_benchmark", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tiny_run_has_a_row_per_k_and_valid_metrics(feedback_benchmark):
    result = feedback_benchmark.run_seed(12_000, seed=3, trees=30)
    rows = result["rows"]
    assert [r["k"] for r in rows] == list(feedback_benchmark.CONFIRMED)
    assert result["held_out"] > 0 and 0 < result["held_out_attacks"] < result["held_out"]
    for r in rows:
        assert 0.0 <= r["auc"] <= 1.0 and 0.0 <= r["p100"] <= 1.0
        assert 0.0 <= r["recall"] <= 1.0 and 0.0 <= r["benign_alerts"] <= 1.0
        assert r["confirmed"] == min(r["k"], len(result["clusters"]))
    assert rows[0]["labelled"] == 0                        # k = 0: no feedback model
    lines = feedback_benchmark.table([result])
    assert lines[0].startswith("| k confirmed |") and len(lines) == 2 + len(rows)
    assert all(line.count("|") == 8 for line in lines)
    met, how = feedback_benchmark.goal([result])
    assert isinstance(met, bool) and how
