"""The Bayes ceiling of the synthetic tasks (diffmic.data.synthetic.ceiling) and the plans it reads."""

from __future__ import annotations

import math

import numpy as np
import pytest

from diffmic.data.synthetic import (
    GENERATORS,
    derm,
    fundus,
    generate_dataset,
    generate_sample,
    placenta,
    plan_of,
)
from diffmic.data.synthetic import ceiling as C

MODULES = {"fundus": fundus, "derm": derm, "placenta": placenta}


def test_toy_law_by_hand(monkeypatch):
    """Two classes: a count of 0 or 1 (w.p. 0.2) against 1 or 2 (w.p. 0.5 each). By hand the Bayes rule
    says class 0 for 0 and class 1 for 1 or 2, right on 0.8 of class 0 and all of class 1: 0.9."""
    toy = C.Law(("count",), lambda p: (p["count"],), ((C.bern(0.2),), (C.bern(0.5, 1),)))
    monkeypatch.setattr(C, "law_of", {"toy": toy}.__getitem__)
    lik = C.likelihood("toy", np.array([[0], [1], [2]]))
    np.testing.assert_allclose(lik, [[0.8, 0], [0.2, 0.5], [0, 0.5]])
    assert lik.argmax(1).tolist() == [0, 1, 1]
    assert C.expected_ceiling("toy") == pytest.approx(0.9, abs=1e-12)


def test_fundus_rule_by_hand():
    """One dot and nothing else: No DR with a look-alike (0.12) against Mild with one microaneurysm and no
    haemorrhage (e^-1.5 x 0.85); a severe picture: Proliferative exactly when a tuft shows (0.7 vs 0.12)."""
    visible = np.array([[1, 0, 0, 0, 0], [0, 0, 0, 0, 0], [5, 4, 1, 1, 1], [5, 4, 1, 1, 0]])
    lik = C.likelihood("fundus", visible)
    assert lik[0, :2] == pytest.approx([0.12, math.exp(-1.5) * 0.85]) and (lik[0, 2:] == 0).all()
    assert lik.argmax(1).tolist() == [1, 0, 4, 3]
    assert lik[2, 4] / lik[2, 3] == pytest.approx(0.7 / 0.12)


def test_derm_expected_ceiling_by_hand():
    """NV and MEL cross 0.5 w.p. P(Beta(2, 5) > 0.5) = P(Binomial(6, 1/2) <= 1) = 7/64; BCC and BKL never
    err: (2 x 57/64 + 2) / 4 = 121/128."""
    assert C.expected_ceiling("derm") == pytest.approx(121 / 128, abs=1e-12)
    labels, post = C.bayes_posterior("derm", range(40), seed=0)
    s = np.array([plan_of("derm", i, 0)[1].get("s", np.nan) for i in range(40)])
    melanocytic = labels <= 1
    assert (post[melanocytic].argmax(1) == (s[melanocytic] >= 0.5)).all()  # the side of 0.5 decides
    assert (post[~melanocytic].argmax(1) == labels[~melanocytic]).all()


@pytest.mark.parametrize("task", sorted(GENERATORS))
def test_laws_match_the_samplers(task):
    """Each visible entry's distribution per class, as the generator's ``LAW`` writes it, against its own
    sampler: same support, frequencies within 0.035 (4000 draws)."""
    spec, law = GENERATORS[task], C.law_of(task)
    rng = np.random.default_rng(0)
    for c, dists in enumerate(law.classes):
        visible = np.array([law.visible(spec.draw_plan(rng, c)) for _ in range(4000)])
        for j, d in enumerate(dists):
            values, counts = np.unique(visible[:, j], return_counts=True)
            assert (d.pmf(values) > 0).all(), (task, c, law.names[j])
            assert np.abs(counts / len(visible) - d.pmf(values)).max() < 0.035, (task, c, law.names[j])


@pytest.mark.parametrize("task", sorted(GENERATORS))
def test_fresh_images_agree_with_the_exact_expectation(task):
    expected = C.expected_ceiling(task)
    fresh = C.ceiling(task, range(30_000_000, 30_003_000), seed=0)
    assert abs(fresh - expected) < 4 * math.sqrt(expected * (1 - expected) / 3000)
    assert expected < 1  # adjacent classes overlap: no classifier is always right


def _record(monkeypatch, module, name: str) -> list:
    """Replace module.name by a wrapper that logs (args, result) of every call."""
    calls, f = [], getattr(module, name)

    def wrapper(*args, **kw):
        calls.append((args, f(*args, **kw)))
        return calls[-1][1]

    monkeypatch.setattr(module, name, wrapper)
    return calls


@pytest.mark.parametrize("task", sorted(GENERATORS))
def test_rendering_uses_the_planned_plan(task, monkeypatch):
    """generate_sample draws exactly plan_of's plan for the same index, and (fundus, placenta) finds a site
    for every planned lesion, so the image shows the planned counts."""
    module = MODULES[task]
    plans = _record(monkeypatch, module, "draw_plan")
    site_sampler = {"fundus": "lesion_sites", "placenta": "placenta_sites"}.get(task)
    sites = _record(monkeypatch, module, site_sampler) if site_sampler else []
    for index in (3, 4, 10_000_017):
        sample = generate_sample(task, index, seed=1, size=32)
        label, plan = plan_of(task, index, seed=1)
        assert plans[-1][1] == plan and sample.label == label
    assert all(len(found) == args[2] for args, found in sites)
    assert sites or not site_sampler


def test_best_possible_is_the_ceiling_of_the_generated_test_set():
    from diffmic.data.datasets import SYNTHETIC_TEST_START

    _, labels, _ = generate_dataset("placenta", 8, seed=0, size=32, start=SYNTHETIC_TEST_START)
    plan_labels, _ = C.visible_plans("placenta", range(SYNTHETIC_TEST_START, SYNTHETIC_TEST_START + 8), 0)
    assert plan_labels.tolist() == labels.tolist()
    n = 60
    value = C.best_possible("placenta", n)
    assert value == C.ceiling("placenta", range(SYNTHETIC_TEST_START, SYNTHETIC_TEST_START + n), 0)
    assert value * n == round(value * n)  # a fraction of these n images
    with pytest.raises(ValueError, match="known tasks"):
        C.best_possible("xray", 5)
