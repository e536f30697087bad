"""The Learn tab's words: what each part of the lesson shows (``FORWARD_TEXT``, ``SCHEDULE_TEXT``,
``SAMPLER_TEXT``, ``PRIOR_TEXT``) and the captions made from one lesson: its image against the model's prior
(``intro_markdown``), the prior in words, where the schedule crosses the lines a student looks for, a chain's
steps, time and answer, and how the model does on held-out images (``measured_note``).
"""

from __future__ import annotations

import numpy as np

from diffmic.lesson import ReverseChain

from . import report
from .glossary import info
from .lesson_figures import Lesson

FORWARD_TEXT = (
    "**The forward process** destroys the label. At t = 0 the label vector y₀ is the one-hot vector of the "
    f"true class. Every step mixes in a little of the *prior*{info('prior')} (the guidance network's guess) "
    "and a little Gaussian noise: q(y_t | y₀, prior) = N(√ᾱ_t·y₀ + (1−√ᾱ_t)·prior, (1−ᾱ_t)·I), where "
    f"ᾱ_t{info('ᾱ_t')} falls from nearly 1 to nearly 0. By t = T nothing of the truth is left: "
    f"y_T ~ N(prior, I). **The reverse process** is what the model does: its runs{info('run')} start at "
    "y_T, scattered around the prior, and the denoiser, which sees the image and the prior, takes the "
    "noise out step by step. Both figures show the same t: press **Play forward** (t = 0 → T), "
    "**Play reverse** (t = T → 0), or drag the slider."
)
SCHEDULE_TEXT = (
    "**The noise schedule** sets how fast this happens: β_t is the noise added at step t (it grows "
    f"linearly), ᾱ_t{info('ᾱ_t')} the part of the true label still there, and 1 − √ᾱ_t the prior's weight in "
    "the mean of y_t. The dotted line is the t of the figures above."
)
SAMPLER_TEXT = (
    "**DDPM vs DDIM.** Both start at y_T ~ N(prior, I): centred on the prior (the diamonds at t = T), but "
    "with noise as large as the label itself, so at first each run's probabilities point at an almost "
    "random class; the shaded band spans 0 to 1 and the mean of the runs is not the prior. "
    f"DDPM{info('DDPM')} takes all T small steps and adds fresh noise at each, so every run wanders before "
    f"it settles; DDIM{info('DDIM')} (η{info('η')} = 0) "
    "follows a deterministic path in far fewer steps, keeping each run's starting noise until ᾱ_t grows "
    "(late, near t = 0), then moving straight to the answer. Both usually end at the same answer; DDIM "
    "gets there much faster."
)
PRIOR_TEXT = (
    f"**With vs without the prior.** In DiffMIC the chain is centred on the prior{info('fused prior')}: the "
    "runs start around "
    "it and the denoiser, which was trained with the prior as an input, pulls them to the answer. With a "
    "zero mean instead (plain label diffusion) the chain starts around zero and the denoiser has to do "
    "all the work, so the answer is often less sure or different. Change the prior above and watch the "
    "chains follow it."
)


def chain_caption(what: str, chain: ReverseChain, names: list[str], task: str | None) -> str:
    """One line under a chain figure: steps, time and answer."""
    k = chain.answer
    return (
        f"**{what}**: {chain.steps} steps in {chain.seconds:.2f} s → "
        f"**{report.full_name(task, names[k])}** (probability {report.percent(chain.probabilities[k])})"
    )


def top_classes(probs: np.ndarray, names: list[str], n: int = 2) -> str:
    """``Severe 53 %, Proliferative DR 47 %``: the ``n`` most likely classes (those above 0.5 %)."""
    order = [k for k in np.argsort(-probs)[:n] if probs[k] >= 0.005] or [int(np.argmax(probs))]
    return ", ".join(f"{names[k]} {report.percent(probs[k])}" for k in order)


def prior_words(favour: str | None, blend: float) -> str:
    """What the lesson's prior is, in words."""
    base = "this image's own prior" if favour is None else f"a prior all on {favour}"
    return base if blend <= 0 else f"{base}, blended {blend:.0%} towards uniform"


def intro_markdown(
    names: list[str], own: np.ndarray, truth: int | None, task: str | None, modality: str
) -> str:
    """What the lesson's image shows: its true label against the model's own prior for it."""
    if truth is None:
        return (
            f"**This lesson's image:** a {modality} image whose true label is unknown, so y₀ is the prior's "
            f"top class. The model's prior{info('fused prior')} for it: {top_classes(own, names)}."
        )
    top = int(np.argmax(own))
    truth_name = report.full_name(task, names[truth])
    if top != truth:
        return (
            f"**This lesson's image** is a *{truth_name}* {modality} image, but the model's own "
            f"prior{info('fused prior')} for it favours **{names[top]}** ({top_classes(own, names)}). "
            "Watch the forward process carry the true label towards that prior, and the reverse chain start "
            "from the prior and find its way to an answer."
        )
    return (
        f"**This lesson's image** is a *{truth_name}* {modality} image, and the model's own "
        f"prior{info('fused prior')} already favours its true class ({top_classes(own, names)}): none of "
        "this model's example images has a prior that favours another class. Centre the chain on another "
        "class below and watch it follow."
    )


def measured_note(evaluation: dict | None) -> str:
    """One sentence on how the model does on held-out images (from its ``evaluation.json``), or ''."""
    if not evaluation:
        return ""
    acc = evaluation.get("accuracy", {})
    parts = [
        f"{what} {acc[key]:.0%}"
        for key, what in (
            ("fused", "the prior alone"),
            ("diffmic_single", "one denoised chain"),
            ("diffmic", f"DiffMIC ({evaluation.get('samples', 8)} chains averaged)"),
            ("cnn", "a plain CNN"),
        )
        if key in acc
    ]
    if not parts:
        return ""
    best = evaluation.get("ceiling")
    limit = (
        f" No classifier can do better than {best:.0%} on these images: the rest show the lesions of a "
        "neighbouring class, and those errors are irreducible (the Bayes rule on what each image shows)."
        if best
        else ""
    )
    return (
        f"\n\nOn {evaluation.get('n', '?')} held-out generated images this model is right: "
        + ", ".join(parts)
        + "."
        + limit
    )


def schedule_note(lesson: Lesson) -> str:
    """Where this model's schedule crosses the lines a student looks for."""
    sched = lesson.schedule
    half = int(np.argmax(sched.prior_weight >= 0.5)) if (sched.prior_weight >= 0.5).any() else None
    gone = int(np.argmax(sched.alpha_bar < 0.01)) if (sched.alpha_bar < 0.01).any() else None
    parts = []
    if half is not None:
        parts.append(f"the prior outweighs the true label in the mean of y_t from t = {half}")
    if gone is not None:
        parts.append(f"less than 1 % of the true label (ᾱ_t < 0.01) is left from t = {gone}")
    return f"For this model (T = {sched.T}): " + " and ".join(parts) + "." if parts else ""
