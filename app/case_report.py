"""A one-page PDF report of one case (matplotlib's PDF backend, object API: safe across threads).

It holds what the page shows for a run, for a record: the image as the model saw it, the answer card's
words (the close call or "cannot be assessed" included), the probabilities with their spread over the runs
and the priors, the distribution check, the evidence map and the ROIs, which model ran (id, package
version, a hash of its config), the run's settings, the time, and the disclaimer. Fonts are embedded as
TrueType (``pdf.fonttype`` 42), so the text can be searched and extracted.
"""

from __future__ import annotations

import hashlib
import json
import re
import textwrap
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib
from matplotlib.backends.backend_pdf import FigureCanvasPdf
from matplotlib.figure import Figure

import diffmic
from diffmic.config import DiffMICConfig
from diffmic.ood import assessable
from diffmic.pipeline import DiffMICOutput
from diffmic.tasks import DISCLAIMER

from . import maps, report

A4 = (8.27, 11.69)  # inches
WRAP = 100  # characters a line of running text
FOLDED = "Show the model's answer anyway (unreliable)"


def config_hash(config: DiffMICConfig) -> str:
    """The first 12 hex digits of the SHA-256 of the model's config (sorted JSON): which model ran."""
    text = json.dumps(config.to_dict(), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def plain(markdown: str) -> list[str]:
    """The answer card's Markdown (and its bits of HTML) as plain paragraphs; the folded answer of an image
    that cannot be assessed is labelled as such."""
    text = markdown.replace(FOLDED, "The model's answer anyway (unreliable):")
    text = re.sub(r"</?(strong|b|em)>", "", text)  # inline tags: no paragraph break
    text = re.sub(r"<[^>]+>", "\n\n", text).replace("**", "")
    paragraphs = [re.sub(r"^#+\s*", "", p.strip()) for p in re.split(r"\n\s*\n", text)]
    return [p for p in paragraphs if p and p != report.disclaimer_markdown().replace("**", "")]


def probability_rows(output: DiffMICOutput, task: str | None) -> list[str]:
    """A fixed-width table: per class the probability (mean over the runs), its SD, the runs' range and
    votes, and the global, local and fused priors."""
    unc, n = output.uncertainty, int(output.sample_probs.shape[0])
    width = max(12, *(len(report.full_name(task, k)) for k in output.probabilities))
    rows = [
        f"{'class':<{width}}  {'prob.':>6}  {'± SD':>5}  {'runs min–max':>12}  {'votes':>7}  "
        f"{'global':>6}  {'local':>6}  {'fused':>6}"
    ]
    for c, (name, p) in enumerate(output.probabilities.items()):
        column = output.sample_probs[:, c]
        spread = f"{100 * column.min():.0f}–{100 * column.max():.0f} %"
        votes = f"{round(unc['vote'][name] * n)}/{n}"
        priors = "  ".join(f"{100 * output.prior[k][name]:5.1f}%" for k in ("global", "local", "fused"))
        rows.append(
            f"{report.full_name(task, name):<{width}}  {100 * p:5.1f}%  {100 * unc['std'][name]:5.1f}  "
            f"{spread:>12}  {votes:>7}  {priors}"
        )
    return rows


@dataclass(frozen=True)
class CaseReport:
    """Everything one case's PDF shows; ``write`` makes it."""

    output: DiffMICOutput
    task: str | None
    source: str  # "bundled fundus model", "Hub model org/name"
    config: DiffMICConfig
    suggestions: tuple[tuple[str, str], ...] = ()  # (name, title) of models accepting a flagged image
    when: float | None = None  # seconds since the epoch; now when None

    def card(self) -> list[str]:
        """The answer card's paragraphs, as on the page."""
        fits = assessable(self.output.ood)
        return plain(report.answer_markdown(self.output, self.task, fits, self.suggestions))

    def header(self) -> list[str]:
        """Which model ran, how, and when."""
        o, opts = self.output, self.output.options
        stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.when or time.time()))
        return [
            f"Time: {stamp}",
            f"Model: {self.source} (task {self.task or 'custom'}), DiffMIC package {diffmic.__version__}, "
            f"config hash {config_hash(self.config)}",
            f"Run: {opts.sampler.upper()}, {o.steps} steps, {opts.samples} run(s), seed {opts.seed}, "
            f"{o.seconds:.2f} s",
        ]

    def write(self, path: str | Path) -> Path:
        """Save the report as a one-page A4 PDF at ``path``."""
        with matplotlib.rc_context({"pdf.fonttype": 42, "font.family": "DejaVu Sans"}):
            fig = Figure(figsize=A4)
            FigureCanvasPdf(fig)
            self._draw(fig)
            path = Path(path)
            fig.savefig(path, format="pdf", metadata={"Title": "DiffMIC case report", "Creator": "DiffMIC"})
        return path

    def _draw(self, fig: Figure) -> None:
        y = 0.965
        fig.text(0.06, y, "DiffMIC case report", fontsize=15, weight="bold", va="top")
        y -= 0.03
        y = _lines(fig, y, self.header(), 8.5)
        data = maps.map_data(self.output)
        images = (
            ("The model's view of the image", maps.original(self.output.pixels)),
            ("Evidence map (DCG class activation)", maps.heat_image(data, maps.DEFAULT_HEAT, 0.5)),
            ("Regions of interest (1 = most attended)", maps.roi_image(self.output)),
        )
        for k, (title, pixels) in enumerate(images):
            ax = fig.add_axes((0.06 + k * 0.3, y - 0.235, 0.28, 0.21))
            ax.imshow(pixels)
            ax.set_axis_off()
            ax.set_title(title, fontsize=7.5)
        y -= 0.26
        fig.text(0.06, y, "Answer", fontsize=11, weight="bold", va="top")
        y = _lines(fig, y - 0.022, [w for p in self.card() for w in _wrap(p)], 9)
        fig.text(0.06, y - 0.01, "Probabilities (mean over the runs) and priors", fontsize=11, weight="bold")
        y = _lines(fig, y - 0.02, probability_rows(self.output, self.task), 7.5, family="DejaVu Sans Mono")
        unc = self.output.uncertainty
        facts = [report.distribution_line(self.output.ood)]
        if unc["n_samples"] > 1:
            facts.append(
                f"Top two told apart by the paired t-test over the runs: "
                f"{'yes' if unc['distinguishable'] else 'no'} (p = {unc['p_value']:.2g}). "
                f"Entropy {unc['entropy']:.2f} nats. ± SD: standard deviation over the runs, "
                "in percentage points."
            )
        y = _lines(fig, y - 0.01, [w for p in facts for w in _wrap(p)], 8)
        fig.text(0.06, 0.03, "\n".join(_wrap(DISCLAIMER)), fontsize=9, weight="bold", color="#9a3412")


def _wrap(paragraph: str) -> list[str]:
    return textwrap.wrap(paragraph, WRAP) or [""]


def _lines(fig: Figure, y: float, lines: Sequence[str], size: float, **kw) -> float:
    """Write ``lines`` from the top at ``y`` (figure fraction); return the y under them."""
    step = size / 72 / A4[1] * 1.45
    for line in lines:
        fig.text(0.06, y, line, fontsize=size, va="top", **kw)
        y -= step
    return y
