"""The glossary: one table of terms, a sentence each, true to the code; its (i) in Learn; under every tab."""

from __future__ import annotations

import html
import math
import re
from types import SimpleNamespace

import gradio as gr
import numpy as np
import pytest

from app import glossary, report, server
from app.glossary import TERMS, glossary_markdown, info, term
from app.lesson_words import FORWARD_TEXT, PRIOR_TEXT, SAMPLER_TEXT, SCHEDULE_TEXT, intro_markdown
from app.settings import DEFAULT_DDIM_STEPS, DEFAULT_SAMPLES
from app.ui import build_demo
from diffmic.uncertainty import sample_uncertainty
from tests.test_app_support import make_app_dirs

# the words issue 25 asks to explain
LISTED = ("prior", "global prior", "local prior", "fused prior", "DCG", "CAM", "ROI", "Grad-CAM", "LayerCAM",
          "run", "chain", "DDPM", "DDIM", "η", "ᾱ_t", "t-test", "entropy", "ECE", "macro-F1", "κ",
          "distribution check")  # fmt: skip
INFO = re.compile(r'<abbr class="gloss-i" tabindex="0" title="([^"]*)" data-term="([^"]*)">i</abbr>')


def infos(text: str) -> list[tuple[str, str]]:
    """(term, definition) of every (i) in a text."""
    return [(html.unescape(name), html.unescape(title)) for title, name in INFO.findall(text)]


def test_every_listed_term_has_one_entry_of_one_sentence():
    assert len({term(word).name for word in LISTED}) == 19  # Grad-CAM / LayerCAM and run / chain share one
    for entry in TERMS:
        text = entry.definition
        assert text.endswith(".") and text[0].isupper(), entry.name
        assert not re.search(r"[.!?]\s+\S", text), f"{entry.name}: more than one sentence"
        assert 40 < len(text) < 330, entry.name
    with pytest.raises(KeyError, match="not in the glossary; terms: prior"):
        term("sigmoid")


def test_the_definitions_say_what_the_code_does():
    # entropy: the app reports nats (natural logarithm): two equally likely classes give ln 2
    assert "nats" in term("entropy").definition
    assert math.isclose(sample_uncertainty(np.array([[0.5, 0.5]])).entropy, math.log(2))
    assert f"{DEFAULT_SAMPLES} runs" in term("run").definition
    assert f"{DEFAULT_DDIM_STEPS} steps" in term("DDIM").definition
    assert "p < 0.05" in term("t-test").definition and "four times" in term("κ").definition


def test_an_info_carries_its_terms_sentence_escaped():
    shown = info("fused prior")
    assert infos(shown) == [("fused prior", term("fused prior").definition)]
    assert "'" not in shown.split('title="')[1]  # the apostrophe of "network's" is escaped in the attribute
    assert infos(info("Eta")) == infos(info("η"))  # aliases, any case


def learn_texts() -> str:
    names = ["No DR", "Mild", "Moderate"]
    own = np.array([0.2, 0.7, 0.1])
    intros = [intro_markdown(names, own, truth, "fundus", "colour fundus") for truth in (0, 1, None)]
    return "\n".join([FORWARD_TEXT, SCHEDULE_TEXT, SAMPLER_TEXT, PRIOR_TEXT, *intros])


def test_every_info_in_learn_is_a_term_of_the_table():
    found = infos(learn_texts())
    assert len(found) >= 10
    by_name = {entry.name: entry.definition for entry in TERMS}
    for name, definition in found:
        assert by_name[name] == definition
    assert {"prior", "fused prior", "ᾱ_t", "run (chain)", "DDPM", "DDIM", "η"} <= {n for n, _ in found}
    assert len(INFO.findall(learn_texts())) == learn_texts().count(
        'class="gloss-i"'
    )  # no (i) of another shape


def test_the_glossary_view_lists_every_term_and_the_class_names():
    view = glossary_markdown()
    assert [name for name, _ in infos(view)] == [entry.name for entry in TERMS]
    assert all(entry.definition in view for entry in TERMS)
    assert "MEL = Melanoma" in view and "Grade II = Grannum grade II" in view


def ancestors(block) -> list:
    out = []
    while getattr(block, "parent", None) is not None:
        block = block.parent
        out.append(block)
    return out


def test_the_glossary_is_reachable_from_every_tab(tmp_path):
    demo = build_demo(make_app_dirs(tmp_path, 1))
    blocks = list(demo.blocks.values())
    tabs = [b for b in blocks if isinstance(b, gr.Tab)]
    box = next(b for b in blocks if getattr(b, "elem_id", None) == "glossary-box")
    terms = next(b for b in blocks if getattr(b, "elem_id", None) == "glossary-terms")
    assert [t.label for t in tabs] == ["Diagnose", "Learn", "Evaluate"]
    assert isinstance(box, gr.Accordion) and box in ancestors(terms)
    # outside every tab, beside the tabs: shown whichever tab is open
    assert not any(isinstance(b, (gr.Tab, gr.Tabs)) for b in ancestors(box))
    tabs_block = next(b for b in blocks if isinstance(b, gr.Tabs))
    assert box.parent is tabs_block.parent and all(tabs_block in ancestors(t) for t in tabs)
    assert terms.value == glossary_markdown()


def test_the_page_is_served_with_the_infos_style(monkeypatch, tmp_path):
    seen = {}
    demo = SimpleNamespace(queue=lambda **_: None, launch=lambda **options: seen.update(options), fns={})
    server.launch(demo, None, make_app_dirs(tmp_path, 1))
    assert glossary.CSS in seen["css"] and ".gloss-i" in glossary.CSS


def test_every_info_in_diagnoses_details_is_a_term_of_the_table():
    from tests.test_app_handlers import fake_output

    output = fake_output([[0.7, 0.1, 0.1, 0.05, 0.05], [0.6, 0.2, 0.1, 0.05, 0.05]])
    output.prior = {k: dict(output.probabilities) for k in ("global", "local", "fused")}
    output.options = SimpleNamespace(sampler="ddim", seed=0)
    output.steps = 5
    found = infos(report.details_markdown(output, "fundus", "bundled fundus model"))
    by_name = {entry.name: entry.definition for entry in TERMS}
    assert all(by_name[name] == definition for name, definition in found)
    names = {name for name, _ in found}
    assert names == {"run (chain)", "global prior", "local prior", "fused prior", "t-test", "entropy",
                     "distribution check"}  # fmt: skip


def test_every_info_in_evaluates_results_and_note_is_a_term_of_the_table():
    from app.eval_metrics import metrics_markdown
    from app.evaluation_tab import DEFAULTS_NOTE

    row = {"accuracy": 0.8, "macro_f1": 0.7, "kappa": 0.6, "ece": 0.05}
    result = {
        "n": 10,
        "sampler": "ddpm",
        "steps": None,
        "samples": 8,
        **{k: dict(row) for k in ("diffmic", "diffmic_single", "fused", "global", "local")},
    }
    result["diffmic"]["kappa_weights"] = "quadratic"
    text = metrics_markdown(result, "images", "a zip", 1000, best=0.9) + DEFAULTS_NOTE
    found = infos(text)
    by_name = {entry.name: entry.definition for entry in TERMS}
    assert all(by_name[name] == definition for name, definition in found)
    assert {
        "macro-F1",
        "κ (quadratic-weighted kappa)",
        "ECE",
        "fused prior",
        "global prior",
        "local prior",
        "run (chain)",
        "DDIM",
    } <= {n for n, _ in found}
    assert len(INFO.findall(text)) == text.count('class="gloss-i"')


def test_every_info_the_page_shows_is_a_term_of_the_table(tmp_path):
    """Every (i) in the built page's texts (all tabs, notes and titles) is the (i) of a term."""
    demo = build_demo(make_app_dirs(tmp_path, 1))
    texts = [b.value for b in demo.blocks.values() if isinstance(getattr(b, "value", None), str)]
    found = infos("\n".join(texts))
    by_name = {entry.name: entry.definition for entry in TERMS}
    assert all(by_name[name] == definition for name, definition in found)
    names = {name for name, _ in found}
    assert {"DDPM", "run (chain)", "DDIM", "DCG", "CAM", "ROI", "Grad-CAM / LayerCAM"} <= names
    assert len(found) == sum(t.count('class="gloss-i"') for t in texts)
