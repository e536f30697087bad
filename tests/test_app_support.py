"""Builders shared by the app tests (a weights folder with a tiny model, example images, dataset zips),
and tests of the small pieces they rely on (example discovery, settings)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from app.assets import label_from_filename, list_examples
from app.settings import Settings, load_settings, server_port
from diffmic.class_match import class_index, normalise_name
from diffmic.data.synthetic import GENERATORS, generate_sample
from tests.helpers import tiny_model

FUNDUS = list(GENERATORS["fundus"].class_names)


def make_app_dirs(root: Path, n_examples: int = 5, tasks: tuple[str, ...] = ("fundus",)) -> Settings:
    """``root/weights/<task>`` (a tiny random model with the task's classes; its input is 128 px) for each
    of ``tasks`` and ``root/assets/fundus`` (``n_examples`` generated fundus images)."""
    for task in tasks:
        names = list(GENERATORS[task].class_names)
        model = tiny_model(len(names), class_names=names, task=task, ordinal=GENERATORS[task].ordinal)
        model.save_pretrained(root / "weights" / task)
    folder = root / "assets" / "fundus"
    folder.mkdir(parents=True)
    for i in range(n_examples):
        s = generate_sample("fundus", i, 0, 128)
        name = FUNDUS[s.label].lower().replace(" ", "_")
        Image.fromarray(s.image).save(folder / f"{s.label}_{name}_{i}.png")  # as in the repo's assets/
    return Settings(root / "weights", root / "assets", None, 1)


def make_dataset_zip(root: Path, n_per_class: int = 2, task: str = "fundus") -> Path:
    """A zipped folder-per-class dataset (one top-level folder, as when a folder is zipped)."""
    from diffmic.data.fixtures import write_image_folder_fixture

    data = write_image_folder_fixture(root / "dataset", task, n_per_class, 64, seed=1)
    zip_path = root / "dataset.zip"
    with zipfile.ZipFile(zip_path, "w") as zf:
        for p in sorted(data.rglob("*")):
            if p.is_file():
                zf.write(p, Path("mydata") / p.relative_to(data))
    return zip_path


def test_examples_are_listed_with_their_labels(tmp_path):
    settings = make_app_dirs(tmp_path, n_examples=5)
    examples = list_examples(settings.assets_dir)
    assert len(examples) == 5 and {e.task for e in examples} == {"fundus"}
    for e in examples:
        assert e.label in FUNDUS, e.path.name  # spelled as the class name
        assert e.caption == e.label and e.thumbnail() == str(e.path)
    assert label_from_filename(Path("proliferative_dr_3.png")) == "proliferative dr"
    assert label_from_filename(Path("2_moderate_0.png")) == "moderate"
    assert label_from_filename(Path("0_grade_0_0.png")) == "grade 0"
    assert normalise_name("02_Moderate") == normalise_name("moderate")
    assert class_index("grade ii", ["Grade I", "Grade II"]) == 1
    assert list_examples(tmp_path / "nowhere") == []


def test_settings_come_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("DIFFMIC_WEIGHTS_DIR", str(tmp_path / "w"))
    monkeypatch.setenv("DIFFMIC_ASSETS_DIR", str(tmp_path / "a"))
    monkeypatch.setenv("DIFFMIC_MODEL_REPO", "someone/diffmic-fundus")
    monkeypatch.setenv("GRADIO_SERVER_PORT", "7999")
    s = load_settings()
    assert (s.weights_dir, s.assets_dir, s.model_repo) == (
        tmp_path / "w",
        tmp_path / "a",
        "someone/diffmic-fundus",
    )
    assert server_port() == 7999
    monkeypatch.delenv("GRADIO_SERVER_PORT")
    monkeypatch.delenv("DIFFMIC_WEIGHTS_DIR")
    assert server_port() == 7860
    assert load_settings().weights_dir.name == "weights"


def random_png(path: Path, size: int = 48) -> Path:
    """A random RGB PNG."""
    pixels = np.random.default_rng(0).integers(0, 255, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, "PNG")
    return path


def test_every_figure_passes_plotly_validation():
    """The app builds its figures without plotly's validation (for speed); the dicts must still be valid."""
    import plotly.graph_objects as go

    from app import figures
    from app.confusion_figure import confusion_figure
    from app.forward_figure import forward_figure
    from app.learn import one_hot
    from app.lesson_figures import Lesson, reverse_figure, schedule_figure
    from app.lesson_processes import forward_process
    from diffmic.lesson import reverse_chain, schedule
    from diffmic.options import SamplingOptions
    from diffmic.pipeline import DiffMICPipeline
    from tests.helpers import random_image

    pipe = DiffMICPipeline(tiny_model(3))
    out = pipe(random_image(), SamplingOptions(sampler="ddim", steps=6, samples=4, seed=0))
    traj, names = out.trajectory, out.trajectory.class_names
    fp = forward_process(pipe, one_hot(1, 3), traj.prior, ["a", "b", "c"])
    chain = reverse_chain(pipe, pipe.prepare(random_image()), SamplingOptions(steps=10, samples=3))
    lesson = Lesson(fp, chain, schedule(pipe.model.diffusion), 1)
    built = [
        figures.empty_figure("nothing yet"),
        figures.trajectory_figure(traj, pipe.config.timesteps, labels=["a", "b", "c"]),
        figures.probability_bars(names, traj.current, traj.prior, title="bars"),
        confusion_figure([[3, 1, 0], [0, 2, 1], [1, 0, 4]], names),
        forward_figure(fp, 5),
        figures.trajectory_figure(traj, 100, each_run=True, now=40, from_prior=False, max_points=3),
        reverse_figure(lesson, 5),
        schedule_figure(lesson.schedule, 5),
    ]
    for fig in built:
        plain = fig.to_plotly_json()
        checked = go.Figure(plain["data"], plain["layout"])  # raises on an invalid property or value
        assert [t.type for t in checked.data] == [t["type"] for t in plain["data"]]
