"""What a Diagnose run leaves to download: the trajectory as CSV and JSON in a folder of its own, and what
the figure and report buttons need to add the publication PNG and the PDF beside them (``FigureRequest``).
The prediction JSON carries ``assessable`` beside ``ood`` (``with_assessable``), as the API does."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from diffmic.ood import assessable
from diffmic.pipeline import DiffMICOutput
from diffmic.trajectory import Trajectory

from .case_report import CaseReport
from .outputs import new_run_folder, slug


@dataclass(frozen=True)
class FigureRequest:
    """What the figure, report and replay controls need of the run on the page: its trajectory (the
    pipeline's), its title, its case report, where its downloads are, and the class names to show."""

    trajectory: Trajectory
    T: int
    title: str
    png: Path
    files: tuple[Path, ...]  # the downloads already written (CSV, JSON)
    case: CaseReport | None = None
    pdf: Path | None = None
    labels: tuple[str, ...] = ()  # full class names, in class order

    def shown(self) -> list[str]:
        """The downloads made so far: CSV, JSON, then the PNG and the PDF once made."""
        made = [p for p in (self.png, self.pdf) if p is not None and p.exists()]
        return [str(p) for p in (*self.files, *made)]


def with_assessable(answer: dict) -> dict:
    """The prediction JSON with ``"assessable": true/false`` right after ``ood``."""
    out: dict = {}
    for key, value in answer.items():
        out[key] = value
        if key == "ood":
            out["assessable"] = assessable(value)
    return out


def write_downloads(
    output: DiffMICOutput,
    source: str,
    name: str,
    T: int,
    case: CaseReport | None = None,
    labels: Sequence[str] = (),
) -> FigureRequest:
    """Write the trajectory as CSV and JSON into a new folder; returns their paths (``files``) with what
    the figure and report buttons need to add a PNG and a PDF beside them."""
    traj, opts = output.trajectory, output.options
    folder = new_run_folder("diagnose")
    stem = f"diffmic-{slug(name)}-{opts.sampler}-{output.steps}steps-seed{opts.seed}"
    csv_path = folder / f"{stem}.csv"
    csv_path.write_text(traj.to_csv())
    json_path = folder / f"{stem}.json"
    json_path.write_text(traj.to_json({"model": source, "prediction": with_assessable(output.to_json())}))
    title = (
        f"DiffMIC ({source}): {opts.sampler.upper()}, {output.steps} steps, "
        f"{opts.samples} runs → {output.label}"
    )
    pdf = folder / f"{stem}-report.pdf" if case is not None else None
    return FigureRequest(
        traj, T, title, folder / f"{stem}.png", (csv_path, json_path), case, pdf, tuple(labels)
    )
