"""Each bundled plain-CNN baseline is what its model card says: the DiffMIC model's classes, one of its
networks (the global network, or the denoiser's encoder) at that network's input, and the settings of the
baseline command the card gives."""

import re
from pathlib import Path

import pytest

from diffmic.baseline_model import CNNConfig
from diffmic.config import DiffMICConfig
from diffmic.tasks import TASKS

WEIGHTS = Path(__file__).resolve().parent.parent / "weights"
FLAGS = {"--backbone": "backbone", "--image-size": "image_size", "--input-scale": "input_scale"}


def flag(command: str, name: str) -> str | None:
    """The value of ``name`` in a command line (``--epochs 20`` → '20'), or None."""
    found = re.search(rf"(?:^|\s){re.escape(name)}\s+(\S+)", command.split("#")[0])
    return found.group(1) if found else None


def card_command(task: str, program: str) -> str:
    """The line of the task's model card that runs ``program``."""
    card = (WEIGHTS / task / "README.md").read_text()
    return next(line for line in card.splitlines() if line.startswith(program + " "))


@pytest.mark.parametrize("task", sorted(TASKS))
def test_the_bundled_baseline_matches_its_model_and_its_card(task):
    cnn = CNNConfig.load(WEIGHTS / "baselines" / task / "config.json")
    model = DiffMICConfig.load(WEIGHTS / task / "config.json")
    assert (cnn.class_names, cnn.ordinal, cnn.task) == (list(model.class_names), model.ordinal, task)
    networks = ["global", "encoder"] if model.encoder_backbone else ["global"]
    shape = ("backbone", "image_size", "input_scale", "output_stride", "top_percent")
    matches = [[getattr(CNNConfig.like(model, n), f) for f in shape] for n in networks]
    assert [getattr(cnn, f) for f in shape] in matches  # one of DiffMIC's networks, at its input
    command = card_command(task, "python -m diffmic.baseline")
    assert any(source in command for source in ("--task", "--like", "--from-model"))
    for name, field in FLAGS.items():  # every setting the command states is the bundled one's
        if (value := flag(command, name)) is not None:
            assert str(getattr(cnn, field)) == value, (name, value)
    if flag(command, "--train-size") is not None:  # trained on as many images as DiffMIC
        assert flag(command, "--train-size") == flag(
            card_command(task, "python -m diffmic train"), "--train-size"
        )


def test_flag_reads_a_value_and_ignores_comments():
    line = "python -m diffmic.baseline --task placenta --epochs 20 --out runs/x  # not --epochs 16"
    assert flag(line, "--epochs") == "20" and flag(line, "--task") == "placenta"
    assert flag(line, "--backbone") is None
