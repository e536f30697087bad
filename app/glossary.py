"""The glossary: one sentence for each word of the app a medical student may not know, in one table
(``TERMS``, its single source), shown in full under every tab (``build_glossary``) and as an (i) beside a word
where it appears (``info``: hover or tap it for the sentence).

The sentences describe this code: the DCG's priors (``diffmic.dcg``), the samplers (``diffmic.diffusion``),
the statistics of the answer (``diffmic.uncertainty``: entropy in nats), the metrics of Evaluate
(``diffmic.metrics``) and the distribution check (``diffmic.ood``). The class names of the built-in tasks
(``class_names``, also the line under Diagnose's bars) are listed under the terms.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import gradio as gr

from diffmic.tasks import TASKS, task_info
from diffmic.uncertainty import ALPHA

from .settings import DEFAULT_DDIM_STEPS, DEFAULT_SAMPLES

NBSP = "\u00a0"


@dataclass(frozen=True)
class Term:
    """One glossary entry: the word as shown, its one-sentence definition, where it appears, and the other
    spellings ``info`` accepts for it."""

    name: str
    definition: str
    where: str
    aliases: tuple[str, ...] = ()


TERMS: tuple[Term, ...] = (
    Term(
        "prior",
        "The guidance network's first guess at the class probabilities of this image, made before any "
        "denoising: every run starts scattered around it, and the denoiser sees it at every step.",
        "Diagnose, Learn",
        ("priors",),
    ),
    Term(
        "global prior",
        "The class probabilities the DCG's global network gives from the whole image at low resolution, "
        "by averaging the strongest cells of each class in its class-activation map (CAM).",
        "Diagnose (Details)",
    ),
    Term(
        "local prior",
        "The class probabilities the DCG's local network gives from the regions of interest (ROIs), "
        "cut from the image at full resolution and weighed by the attention each one gets.",
        "Diagnose (Details)",
    ),
    Term(
        "fused prior",
        "The prior the chain is centred on: the global and local priors combined (their scores added with "
        "weights fitted on validation images, or half and half) and turned back into probabilities.",
        "Diagnose (Details), Learn, Evaluate",
        ("own prior", "the image's own prior"),
    ),
    Term(
        "DCG",
        "Dual-granularity conditional guidance: the guidance network that looks at the whole image "
        "(global) and at a few zoomed-in regions (local) and gives the priors, the CAM and the ROIs that "
        "steer the diffusion.",
        "Diagnose, Learn",
        ("guidance network",),
    ),
    Term(
        "CAM",
        "Class-activation map: a coarse grid over the image in which the DCG's global network scores how "
        "much each area speaks for each class; the heat map 'DCG evidence' shows it for the answer.",
        "Diagnose (heat map)",
        ("class-activation map", "DCG evidence"),
    ),
    Term(
        "ROI",
        "Region of interest: one of the few square patches the DCG picks where its CAM shows the strongest "
        "evidence (inside the imaged area and spread apart), which its local network reads at full "
        "resolution.",
        "Diagnose (regions of interest)",
        ("ROIs", "region of interest", "regions of interest"),
    ),
    Term(
        "Grad-CAM / LayerCAM",
        "Heat maps made by tracing the answer's score back through the global network (its gradients): "
        "Grad-CAM weighs each feature map of a layer by its average gradient, Grad-CAM++ and LayerCAM weigh "
        "each location, and each model shows the variant its validation images favoured.",
        "Diagnose (heat map)",
        ("Grad-CAM", "Grad-CAM++", "LayerCAM"),
    ),
    Term(
        "run (chain)",
        "One reverse-diffusion chain: a label vector drawn at random around the prior and denoised step by "
        f"step into class probabilities; Diagnose averages {DEFAULT_SAMPLES} runs by default, and how much "
        "they disagree shows how sure the model is.",
        "Diagnose, Learn, Evaluate",
        ("run", "runs", "chain", "chains"),
    ),
    Term(
        "DDPM",
        "Denoising diffusion probabilistic model, the paper's sampler: by default it takes all T steps and "
        "adds fresh random noise at each, so every run wanders before it settles.",
        "Diagnose, Learn, Evaluate (sampler)",
    ),
    Term(
        "DDIM",
        f"Denoising diffusion implicit model, a faster sampler: it skips timesteps ({DEFAULT_DDIM_STEPS} "
        "steps instead of all T by default) and with η = 0 adds no fresh noise, so each run follows a fixed "
        "path from its random start.",
        "Diagnose, Learn, Evaluate (sampler)",
    ),
    Term(
        "η",
        "Eta, DDIM's noise setting: 0, which this app uses, adds no fresh noise at each step, and 1 adds "
        "about as much as DDPM does.",
        "Learn",
        ("eta",),
    ),
    Term(
        "ᾱ_t",
        "Alpha-bar at timestep t: how much of the true label is left in the noisy label y_t, whose mean is "
        "√ᾱ_t × true label + (1 − √ᾱ_t) × prior and whose noise variance is 1 − ᾱ_t; it falls from nearly "
        "1 at t = 0 to nearly 0 at t = T.",
        "Learn",
        ("alpha-bar", "alpha bar"),
    ),
    Term(
        "t-test",
        "A paired t-test over the runs of whether the two most likely classes are told apart run by run: "
        f"p < {ALPHA:g} means the runs consistently put one above the other, and otherwise the answer is "
        "called a close call.",
        "Diagnose (answer, Details)",
        ("paired t-test",),
    ),
    Term(
        "entropy",
        "How spread out the answer's probabilities are, in nats (natural logarithm): 0 when one class is "
        "certain, up to ln C when all C classes are equally likely (1.61 nats for 5 classes).",
        "Diagnose (Details)",
        ("nats",),
    ),
    Term(
        "ECE",
        "Expected calibration error: the images are grouped by the model's confidence in its answer and "
        "the gap between confidence and accuracy is averaged over the groups, so 0 means that answers "
        "given with 80 % are right 80 % of the time.",
        "Evaluate",
        ("expected calibration error", "calibration"),
    ),
    Term(
        "macro-F1",
        "The F1 score (the balance between how many images called a class really have it and how many "
        "that have it are found) computed for each class and averaged, so a rare class counts as much as a "
        "common one.",
        "Evaluate",
        ("macro F1", "F1"),
    ),
    Term(
        "κ (quadratic-weighted kappa)",
        "Agreement between the model's grades and the true grades beyond what chance gives, a miss by two "
        "grades costing four times a miss by one: 1 is perfect, 0 is chance (graded tasks; the others show "
        "Cohen's unweighted κ).",
        "Evaluate",
        ("κ", "kappa", "quadratic-weighted κ", "quadratic-weighted kappa", "Cohen's κ"),
    ),
    Term(
        "distribution check",
        "A test of whether the image looks like the model's training images: its features' distance to "
        "the nearest class of training images is compared with a threshold that 95 % of typical images "
        "pass, and an image beyond it is flagged as one the model cannot assess.",
        "Diagnose (answer, Details)",
        ("OOD", "out of distribution", "cannot be assessed"),
    ),
)

# stylesheet of the (i): the definition shows on hover (the title) and, on a phone, when tapped (focus)
CSS = """
.gloss-i {cursor:help; color:#2563eb; font:italic bold 0.72em/1 Georgia, serif; text-decoration:none;
  border:1.5px solid currentColor; border-radius:50%; width:1.35em; height:1.35em; margin-left:3px;
  position:relative; display:inline-flex; align-items:center; justify-content:center;
  vertical-align:0.15em;}
.gloss-i:focus {outline:2px solid #93c5fd;}
.gloss-i:focus::after {content:attr(title); position:absolute; left:-8px; top:1.5em; z-index:60;
  width:max-content; max-width:min(320px, 80vw); background:#111827; color:#fff; padding:6px 8px;
  border-radius:6px; font-size:0.85rem; line-height:1.3; white-space:normal; font-weight:normal;}
"""


def _key(word: str) -> str:
    return " ".join(word.casefold().split())


_BY_NAME: dict[str, Term] = {}
for _term in TERMS:
    for _word in (_term.name, *_term.aliases):
        if _BY_NAME.setdefault(_key(_word), _term) is not _term:
            raise ValueError(f"the glossary spells {_word!r} for two terms")


def term(word: str) -> Term:
    """The entry of a word (its name or one of its aliases, any case); a KeyError names the known terms."""
    try:
        return _BY_NAME[_key(word)]
    except KeyError:
        raise KeyError(
            f"{word!r} is not in the glossary; terms: {', '.join(t.name for t in TERMS)}"
        ) from None


def info(word: str) -> str:
    """The (i) of a word, to put right after it in Markdown or HTML: its definition on hover or tap."""
    entry = term(word)
    definition = html.escape(entry.definition, quote=True)
    name = html.escape(entry.name, quote=True)
    return f'<abbr class="gloss-i" tabindex="0" title="{definition}" data-term="{name}">i</abbr>'


def class_names(task: str | None) -> str:
    """One line spelling out a task's abbreviated class names (empty for a custom model or none to spell)."""
    info = task_info(task)
    if info is None:
        return ""
    parts = [
        f"{short} = {full}"
        for short, full in zip(info.class_names, info.full_names, strict=True)
        if short != full
    ]
    return ("Classes: " + " · ".join(parts) + ".") if parts else ""


def class_names_markdown() -> str:
    """The class names of the built-in tasks, spelled out (``class_names`` of each)."""
    lines = [
        f"- **{name}** ({task.title}): {class_names(name).removeprefix('Classes: ')}"
        for name, task in TASKS.items()
        if class_names(name)
    ]
    return "\n".join(lines)


def glossary_markdown() -> str:
    """The glossary view: every term with its (i), its sentence and where it appears, then class names."""
    rows = [
        f"| **{entry.name}**{NBSP}{info(entry.name)} | {entry.definition} | {entry.where} |"
        for entry in TERMS
    ]
    classes = class_names_markdown()
    return "\n".join(
        [
            "An (i) beside a word anywhere in the app shows the same sentence (hover over it, or tap it).",
            "",
            "| term | what it means here | where |",
            "|---|---|---|",
            *rows,
            *(["", "**Class names**", "", classes] if classes else []),
        ]
    )


def build_glossary() -> gr.Accordion:
    """The glossary, folded, outside the tabs: the same under every tab."""
    title = "Glossary: the words of this app, one sentence each"
    with gr.Accordion(title, open=False, elem_id="glossary-box") as box:
        gr.Markdown(glossary_markdown(), elem_id="glossary-terms")
    return box
