"""The words on the Diagnose page: the plain-language answer card, the statistics under "details", the
step counter and the model notice.

Class names are spelled out with their abbreviation (``diffmic.tasks``); probabilities are percentages
called "probability". How plainly the answer is stated follows ``diffmic.uncertainty.close_call`` (a clear
answer, a close call, a tie), and an image the distribution check flags is not assessed: the card says so
first and keeps the model's answer folded away, greyed and labelled unreliable. No emoji: they render as
empty boxes without colour fonts.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from diffmic.pipeline import DiffMICOutput
from diffmic.tasks import DISCLAIMER, images_phrase, task_info
from diffmic.uncertainty import CLOSE_GAP

from .glossary import info
from .settings import MAX_SAMPLES

NBSP = "\u00a0"  # keeps "21 % ± 27" and "2 of 8" on one line in a table


def disclaimer_markdown() -> str:
    """The disclaimer shown on every tab and under every result."""
    return f"**{DISCLAIMER}**"


def full_name(task: str | None, name: str) -> str:
    """``MEL`` → ``Melanoma (MEL)`` for a built-in task; the name itself otherwise."""
    info = task_info(task)
    return info.full_name(name) if info else name


def percent(p: float) -> str:
    """0.553 → ``55 %`` (below 1 %: ``<1 %``)."""
    value = 100 * float(p)
    return "<1 %" if 0 < value < 0.5 else f"{value:.0f} %"


def _join(parts: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def votes_sentence(output: DiffMICOutput, task: str | None) -> str:
    """How the N runs (chains) voted: all agree, split evenly (a tie), or split between classes."""
    n = int(output.sample_probs.shape[0])
    if n == 1:
        return "One run only: choose more runs under Settings to see how much the answer varies."
    names = list(output.probabilities)
    counts = np.bincount(output.sample_probs.argmax(1), minlength=len(names))
    order = [int(k) for k in np.argsort(-counts, kind="stable") if counts[k] > 0]
    if len(order) == 1:
        return f"All {n} runs agree."
    if counts[order[0]] == counts[order[1]]:
        tied = [k for k in order if counts[k] == counts[order[0]]]
        each = _join([full_name(task, names[k]) for k in tied])
        rest = n - sum(int(counts[k]) for k in tied)
        tail = f"; {rest} for other classes." if rest else "."
        return f"A tie between the runs: {counts[order[0]]} each for {each}{tail}"
    parts = [f"{counts[k]} for {full_name(task, names[k])}" for k in order]
    return f"The {n} runs split: {_join(parts)}."


def _headline(output: DiffMICOutput, task: str | None, level: str = "###") -> tuple[str, str]:
    """The card's first line, worded by ``close_call`` (clear, close, tie), and what a close call means."""
    call = output.uncertainty["close_call"]
    a, b = (full_name(task, k) for k in call["classes"])
    pa, pb = call["probabilities"]
    n = int(output.sample_probs.shape[0])
    more = (
        "More runs (Settings) may separate them."
        if n < MAX_SAMPLES
        else f"Even {n} runs do not separate them: treat both as possible."
    )
    if call["verdict"] == "tie":
        return f"{level} A tie: {a} and {b} — probability {percent(pa)} each", more
    if call["verdict"] == "close":
        why = []
        if "gap" in call["reasons"]:
            why.append(f"their probabilities differ by less than {100 * CLOSE_GAP:.0f} percentage points")
        if "t-test" in call["reasons"]:
            why.append(f"the {n} runs do not consistently put one above the other")
        head = f"{level} Close call between {a} and {b} — probability {percent(pa)} and {percent(pb)}"
        return head, f"The model cannot tell these two apart: {_join(why)}. {more}"
    return f"{level} {full_name(task, output.label)} — probability {percent(pa)}", ""


def _answer_lines(output: DiffMICOutput, task: str | None, level: str = "###") -> list[str]:
    head, note = _headline(output, task, level)
    n = int(output.sample_probs.shape[0])
    column = output.sample_probs[:, output.label_index]
    spread = f"{n} runs: {percent(column.min())}–{percent(column.max())}. " if n > 1 else ""
    return [head, *([note] if note else []), spread + votes_sentence(output, task)]


def answer_markdown(
    output: DiffMICOutput,
    task: str | None,
    assessable: bool = True,
    suggestions: Sequence[tuple[str, str]] = (),
) -> str:
    """The answer card: the class and its probability (or the close call, or the tie), the range over the
    runs, how they voted. Not ``assessable`` (``diffmic.ood.assessable``): that first and plainly, where
    the image may belong (``suggestions``: (model name, title) of bundled models accepting it), and the
    model's answer only behind "show the model's answer anyway", greyed and labelled unreliable."""
    if assessable:
        return "\n\n".join([*_answer_lines(output, task), disclaimer_markdown()])
    hidden = "\n\n".join(
        [
            "**Unreliable:** the model answers even for images unlike its training images.",
            *_answer_lines(output, task, level="####"),
        ]
    )
    return "\n\n".join(
        [
            "### Cannot be assessed by this model",
            not_assessable_html(task, suggestions),
            '<details class="unreliable"><summary>Show the model\'s answer anyway (unreliable)</summary>',
            hidden,
            "</details>",
            disclaimer_markdown(),
        ]
    )


def distribution_line(ood: dict[str, Any]) -> str:
    """The distribution check in one sentence: not available, passed or flagged, with score and threshold."""
    if not ood.get("available"):
        return "Distribution check: not available for this model."
    verdict = "flagged (unlike the training images)" if ood.get("flagged") else "passed"
    return f"Distribution check: {verdict}, score {ood['score']:.3g} (threshold {ood['threshold']:.3g})."


def details_markdown(output: DiffMICOutput, task: str | None, source: str) -> str:
    """The statistics: per-class probabilities, votes and priors; the t-test; entropy; the run's settings
    (each term with its glossary (i))."""
    unc = output.uncertainty
    n = int(output.sample_probs.shape[0])
    lines = [
        f"| class | DiffMIC probability | runs voting{info('run')} | global prior{info('global prior')} | "
        f"local prior{info('local prior')} | fused prior{info('fused prior')} |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, value in output.probabilities.items():
        mark = "**" if name == output.label else ""
        spread = f" ± {100 * unc['std'][name]:.0f}" if n > 1 else ""
        votes = f"{round(unc['vote'][name] * n)} of {n}"
        priors = " | ".join(percent(output.prior[k][name]) for k in ("global", "local", "fused"))
        lines.append(
            f"| {mark}{full_name(task, name)}{mark} | {percent(value)}{spread} | {votes} | {priors} |"
        )
    lines.append("")
    a, b = (full_name(task, k) for k in unc["top2"])
    if n > 1:
        verdict = "yes" if unc["distinguishable"] else "no"
        lines.append(
            f"- Are the top two told apart? {a} against {b}, paired t-test{info('t-test')} over the {n} "
            f"runs: p = {unc['p_value']:.2g}, so **{verdict}** at the 5 % level."
        )
    else:
        lines.append("- Are the top two told apart? A t-test needs at least 2 runs.")
    c = len(output.probabilities)
    lines += [
        f"- Spread of the probabilities (entropy{info('entropy')}): {unc['entropy']:.2f} nats, from 0 (one "
        "class certain) "
        f"to {math.log(c):.2f} (all {c} classes equally likely).",
        f"- {distribution_line(output.ood)} {info('distribution check')}",
        f"- {source}; {output.options.sampler.upper()}, {output.steps} steps, {n} run(s), "
        f"seed {output.options.seed}. ± is the standard deviation over the runs, in percentage points.",
    ]
    return "\n".join(lines)


def counter_markdown(done: int, total: int, t: int | None) -> str:
    """The step counter while the chain runs."""
    if done == 0:
        return f"**Step 0 of {total or '…'}** · the chain starts at y_T ~ N(prior, I)"
    return f"**Step {done} of {total}** · t = {t} · denoising the label…"


def done_markdown(total: int, seconds: float) -> str:
    """The counter after a run: the one run time of the page."""
    return f"**Done:** {total} of {total} steps in {seconds:.2f} s"


def stopped_markdown(done: int, total: int) -> str:
    """The counter after Stop."""
    return f"**Stopped at step {done} of {total}.** The chain did not finish, so there is no answer."


def not_assessable_text(task: str | None, suggestions: Sequence[tuple[str, str]] = ()) -> tuple[str, str]:
    """The plain statement for an image the distribution check flags, and where it may belong instead:
    ``suggestions`` are (model name, its title) of the bundled models whose check accepts it."""
    what = images_phrase(task) if task else "the images"
    statement = (
        f"This image does not look like {what} this model was trained on — "
        "it cannot be assessed by this model."
    )
    if suggestions:
        names = _join([f"{name} ({title})" for name, title in suggestions])
        verb = "model accepts" if len(suggestions) == 1 else "models accept"
        where = f"The bundled {names} {verb} it: choose it under Model."
    else:
        where = "None of the other bundled models accepts it either."
    return statement, where


def not_assessable_html(task: str | None, suggestions: Sequence[tuple[str, str]] = ()) -> str:
    """``not_assessable_text`` as the card's amber box (HTML: a Markdown block cannot carry a class)."""
    statement, where = (html.escape(part) for part in not_assessable_text(task, suggestions))
    for name, _ in suggestions:
        shown = html.escape(name)
        where = where.replace(f"{shown} (", f"<strong>{shown}</strong> (", 1)
    return f'<div class="cannot-assess"><p><strong>{statement}</strong></p><p>{where}</p></div>'


def notice_markdown(notice: str | None, source: str) -> str:
    """Which model ran, and any fallback notice."""
    return f"**Note:** {notice}" if notice else f"Model: {source}."
