"""benchmarks/accuracy.py: DiffMIC's spread over chain seeds beside the headline run, and the gap to the best
possible accuracy on the test images."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from diffmic.data.synthetic.ceiling import best_possible
from diffmic.options import SamplingOptions
from tests.helpers import tiny_model

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("benchmark_accuracy", ROOT / "benchmarks" / "accuracy.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_spread_over_chain_seeds(bench, tmp_path, monkeypatch):
    tiny_model(7, seed=3).save_pretrained(tmp_path / "derm")
    options = SamplingOptions(sampler="ddim", steps=3, samples=2)
    seeds_run = []
    predict = bench.predict_dataset

    def recording(pipe, data, opts, **kw):
        seeds_run.append(opts.seed)
        return predict(pipe, data, opts, **kw)

    monkeypatch.setattr(bench, "predict_dataset", recording)
    res = bench.evaluate_task("derm", tmp_path, 12, options, seeds=3)
    assert len(set(seeds_run)) == 3 and seeds_run[0] == options.seed  # each rerun draws other chains
    spread = res["over_seeds"]
    assert spread["seeds"] == 3 and len(spread["accuracy"]) == 3
    assert spread["accuracy"][0] == pytest.approx(res["diffmic"]["accuracy"], abs=1e-4)  # seed 0 = headline
    assert spread["mean"] == pytest.approx(sum(spread["accuracy"]) / 3, abs=1e-3)
    assert spread["minus_fused"] == pytest.approx(spread["mean"] - res["fused"]["accuracy"], abs=1e-3)
    low, high = spread["ci_vs_fused"]
    assert low <= spread["minus_fused"] <= high
    assert any(line.startswith("Over 3 chain seeds") for line in bench.comparisons(res))
    assert "over_seeds" not in bench.evaluate_task("derm", tmp_path, 12, options)  # one seed: no spread
    assert res["ceiling"] == pytest.approx(best_possible("derm", 12), abs=1e-4)  # the same 12 test images
    text = bench.table("derm", res)
    assert f"Best possible on these images (the Bayes ceiling): {res['ceiling']:.3f}." in text
    for m in ("diffmic", "fused"):
        acc = res[m]["accuracy"]
        assert f"| {m} | {acc:.3f} | {acc - res['ceiling']:+.3f} |" in text
