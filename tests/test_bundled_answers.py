"""The bundled models answer every bundled example with its own label, as the app answers by default.

The examples are chosen so that the Bayes rule names their label with probability >= 0.85
(``tests/test_assets.py``): a wrong answer here is the model's error, and the demo's first click must not
show one."""

from pathlib import Path

import pytest

from diffmic.imageio import load_image
from diffmic.options import APP_DEFAULT
from diffmic.pipeline import DiffMICPipeline
from diffmic.tasks import TASKS

ROOT = Path(__file__).resolve().parent.parent


def label_of(path: Path) -> int:
    """The true class index an example's file name starts with (``3_severe_0.png`` → 3)."""
    return int(path.name.split("_")[0])


@pytest.mark.parametrize("task", sorted(TASKS))
def test_every_example_is_answered_with_its_label(task):
    pipe = DiffMICPipeline.from_pretrained(ROOT / "weights" / task)
    examples = sorted((ROOT / "assets" / task).glob("*.png"))
    assert {label_of(p) for p in examples} == set(range(pipe.config.num_classes))
    answers = {p.name: pipe(load_image(p), APP_DEFAULT) for p in examples}
    wrong = {
        name: (out.label, round(max(out.probabilities.values()), 3))
        for name, out in answers.items()
        if out.label_index != label_of(ROOT / name)
    }
    assert not wrong, wrong


def test_label_of_reads_the_file_name():
    assert label_of(Path("assets/fundus/3_severe_0.png")) == 3
    assert label_of(Path("0_nv_0.png")) == 0
