"""Markdown shown on the page: the result summary, the step counter, error and notice boxes."""

from __future__ import annotations

from diffmic.model import Prediction

from .settings import DISCLAIMER


def disclaimer_markdown() -> str:
    """The disclaimer shown on every tab and under every result."""
    return f"⚠️ **{DISCLAIMER}**"


def counter_markdown(done: int, total: int, t: int | None, seconds: float, finished: bool = False) -> str:
    """The step counter: how far the reverse process is."""
    if finished:
        return f"**Done: {done} / {total} steps** in {seconds:.2f} s"
    if done == 0:
        return f"**Step 0 / {total or '…'}**: the chain starts at y_T ~ N(prior, I)"
    return f"**Step {done} / {total}** · t = {t} · {seconds:.2f} s"


def error_markdown(message: str) -> str:
    """The red error box."""
    return f"❌ **Cannot run:** {message}"


def notice_markdown(notice: str | None, source: str) -> str:
    """Which model ran, and any fallback notice."""
    line = f"Model: {source}."
    return f"⚠️ {notice}" if notice else line


def _pct(p: float) -> str:
    return f"{p:.3f}"


def summary_markdown(pred: Prediction, source: str) -> str:
    """The final answer: label and probability, the sample uncertainty, and the priors beside the answer."""
    unc = pred.uncertainty
    p = pred.probabilities[pred.label]
    sd = unc["std"][pred.label]
    lines = [f"### {pred.label}: p = {p:.3f}" + (f" ± {sd:.3f}" if pred.samples > 1 else "")]
    if pred.samples > 1:
        top, second = unc["top2"]
        verdict = "yes" if unc["distinguishable"] else "no"
        agree = round(unc["agreement"] * pred.samples)
        lines.append(
            f"**Uncertainty over {pred.samples} samples:** {agree}/{pred.samples} samples vote "
            f"*{unc['majority']}* · {top} vs {second} told apart: **{verdict}** "
            f"(paired t-test p = {unc['p_value']:.3g}) · entropy {unc['entropy']:.2f} nats."
        )
    else:
        lines.append(
            f"**Uncertainty:** one sample only (entropy {unc['entropy']:.2f} nats); "
            "draw several samples to see how much the answer varies."
        )
    lines += [
        "",
        "| class | global prior | local prior | fused prior | **DiffMIC** |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, value in pred.probabilities.items():
        mark = "**" if name == pred.label else ""
        spread = f" ± {unc['std'][name]:.3f}" if pred.samples > 1 else ""
        priors = " | ".join(_pct(pred.prior[k][name]) for k in ("global", "local", "fused"))
        lines.append(f"| {mark}{name}{mark} | {priors} | {mark}{_pct(value)}{spread}{mark} |")
    lines += [
        "",
        f"<small>{source} · {pred.sampler.upper()}, {pred.steps} steps, {pred.samples} sample(s), "
        f"seed {pred.seed} · {pred.seconds:.2f} s</small>",
        "",
        disclaimer_markdown(),
    ]
    return "\n".join(lines)
