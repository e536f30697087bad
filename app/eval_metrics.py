"""The Evaluate tab's metrics in words: the headline, how DiffMIC was scored (Diagnose's estimator or not),
the per-method table with the best accuracy possible beside each row when it is known, and what ECE means."""

from __future__ import annotations

from typing import Any

from diffmic.diffusion import sampler_class

from . import report
from .glossary import info
from .settings import DEFAULT_OPTIONS

METHOD_NAMES = {
    "diffmic": "**DiffMIC**",
    "diffmic_single": f"DiffMIC, 1 run{info('run')} (a sample)",
    "fused": f"fused prior{info('fused prior')}",
    "global": f"global prior{info('global prior')}",
    "local": f"local prior{info('local prior')}",
}
SAMPLE_CONSEQUENCE = "1 run is a sample: its calibration is worse by design"


def steps_phrase(steps: int | None) -> str:
    """``"all T steps"`` or ``"50 steps"``."""
    return "all T steps" if steps is None else f"{steps} steps"


def diagnose_estimator() -> str:
    """Diagnose's estimator in words: "the mean of 8 runs (DDPM, all T steps)"."""
    how = f"{sampler_class(DEFAULT_OPTIONS.sampler).label}, {steps_phrase(DEFAULT_OPTIONS.steps)}"
    return f"the mean of {DEFAULT_OPTIONS.samples} runs ({how})"


def is_diagnose_estimator(result: dict[str, Any], timesteps: int) -> bool:
    """Whether ``result`` was scored with Diagnose's sampler, steps (all T however given) and runs."""
    ran = (result["sampler"], result["steps"] or timesteps, result["samples"])
    return ran == (DEFAULT_OPTIONS.sampler, DEFAULT_OPTIONS.steps or timesteps, DEFAULT_OPTIONS.samples)


def estimator_note(result: dict[str, Any], timesteps: int) -> str:
    """How DiffMIC was scored: with Diagnose's estimator, or otherwise (1 run: a sample) and what it costs."""
    if is_diagnose_estimator(result, timesteps):
        return f"DiffMIC is scored with Diagnose's estimator, {diagnose_estimator()}: Diagnose's answer."
    if result["samples"] == 1:
        return (
            f"**1 run per image**: faster, but {SAMPLE_CONSEQUENCE}. Diagnose answers with "
            f"{diagnose_estimator()}, the default here."
        )
    return (
        f"DiffMIC scored on the mean of {result['samples']} runs per image; Diagnose answers with "
        f"{diagnose_estimator()}, the default here."
    )


def metrics_markdown(
    result: dict[str, Any],
    what: str,
    source: str,
    timesteps: int,
    skipped: str = "",
    best: float | None = None,
) -> str:
    """Headline metrics of DiffMIC (and of one of its runs alone) and of its priors; with ``best``, the best
    accuracy possible on these images (generated ones), beside each row's accuracy."""
    kappa = "quadratic-weighted κ" if result["diffmic"].get("kappa_weights") == "quadratic" else "Cohen's κ"
    ceiling = "" if best is None else f" {best:.3f} |"
    lines = [
        f"### Accuracy {result['diffmic']['accuracy']:.3f} · macro-F1{info('macro-F1')} "
        f"{result['diffmic']['macro_f1']:.3f} · {kappa}{info('κ')} {result['diffmic']['kappa']:.3f}",
        f"{result['n']} {what} · {source} · {str(result['sampler']).upper()}, "
        f"{steps_phrase(result['steps'])}, {result['samples']} run(s) per image",
        "",
        estimator_note(result, timesteps),
    ]
    if skipped:
        lines += ["", f"**Skipped:** {skipped}."]
    lines += [
        "",
        f"| method | accuracy |{' best possible |' if best is not None else ''} macro-F1 | {kappa} | "
        f"ECE{info('ECE')} |",
        f"|---|---:|{'---:|' if best is not None else ''}---:|---:|---:|",
    ]
    for key in ("diffmic", "diffmic_single", "fused", "global", "local"):
        if key not in result:  # a single run only when DiffMIC averaged several
            continue
        m = result[key]
        lines.append(
            f"| {METHOD_NAMES[key]} | {m['accuracy']:.3f} |{ceiling} {m['macro_f1']:.3f} | "
            f"{m['kappa']:.3f} | {m['ece']:.3f} |"
        )
    lines += ["", f"ECE{info('ECE')}: expected calibration error (0 = the probabilities are honest)."]
    if "diffmic_single" in result:
        lines += [
            "",
            f"*DiffMIC, 1 run*: the first run of each image alone, what a 1-run setting scores; "
            f"{SAMPLE_CONSEQUENCE}.",
        ]
    if best is not None:
        lines += [
            "",
            f"Best possible: {best:.3f}, the accuracy of the Bayes rule on what each generated image "
            "shows (its lesions). No classifier can expect more: the images it misses show the lesions "
            "of a neighbouring class, and those errors are irreducible.",
        ]
    lines += [
        "",
        report.disclaimer_markdown(),
    ]
    return "\n".join(lines)
