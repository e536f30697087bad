"""The model card ``benchmarks/bundle.py`` writes says how the bundled model was trained, from its log."""

from benchmarks.bundle import card, data_sentence
from tests.helpers import tiny_model


def test_the_card_gives_the_logged_data_and_command():
    model = tiny_model(5)
    log = {
        "data": {"train": 28000, "validation": 2000},
        "command": "python -m diffmic train --task fundus --train-size 30000 --out runs/fundus",
        "history": [{"stage": "global", "epoch": 16}],
        "train_config": {"patience": 3},
    }
    text = card("fundus", model, log, {}, {}, {})
    assert "30,000 generated images" in text and "28,000 training, 2,000 validation" in text
    assert log["command"] in text and "global 16 epochs" in text


def test_an_old_log_without_data_keeps_the_old_sentence():
    assert data_sentence({}, 256).startswith("3,000 generated images at 256 px")
    assert data_sentence({"data": {"train": 85, "validation": 15}}, 64).startswith(
        "100 generated images at 64"
    )


def test_the_baseline_line_names_the_logged_run():
    from benchmarks.bundle import run_dir

    assert run_dir(
        {"command": "python -m diffmic train --task fundus --out runs/fundus30k --x 1"}, "fundus"
    ) == ("runs/fundus30k")
    assert run_dir({}, "derm") == "runs/derm"


def test_a_baseline_trained_by_the_runs_recipe_is_carded_as_such():
    model = tiny_model(5)
    data = {"train": 28000, "validation": 2000}
    log = {
        "data": data,
        "command": "python -m diffmic train --task fundus --out runs/fundus30k --global-epochs 16",
        "history": [{"stage": "global", "epoch": 16}],
        "train_config": {"global_epochs": 16, "patience": 3, "batch_size": 64},
    }
    history = [{"stage": "global", "epoch": e, "score": s} for e, s in ((1, 0.6), (2, 0.81), (3, 0.8))]
    recipe = {"global_epochs": 16, "patience": 3, "batch_size": 64, "global_lr": 1e-3, "data": data}
    cnn_log = {"recipe": recipe, "epoch": 3, "train_seconds": 1800.0, "history": history}
    text = card("fundus", model, log, cnn_log, {}, {})
    assert "python -m diffmic.baseline --like runs/fundus30k --out runs/cnn_fundus" in text
    assert "trained separately: 30 min (3 epochs, best validation macro-F1 0.810 at epoch 2)" in text
    other = {**cnn_log, "recipe": {**recipe, "batch_size": 32}}  # another recipe: not carded as the same
    assert "--like" not in card("fundus", model, log, other, {}, {})
    fewer = {**cnn_log, "recipe": {**recipe, "data": {"train": 850, "validation": 150}}}
    assert "--like" not in card("fundus", model, log, fewer, {}, {})


def test_a_baseline_that_logged_its_command_is_carded_by_it():
    model = tiny_model(5)
    log = {"command": "python -m diffmic train --task placenta --out runs/placenta30k"}
    command = "python -m diffmic.baseline --task placenta --epochs 20 --out runs/cnn_placenta30k"
    cnn_log = {"command": command, "recipe": {"global_epochs": 20}, "epoch": 20, "history": []}
    assert f"{command}  # the plain-CNN baseline" in card("placenta", model, log, cnn_log, {}, {})
    explained = {**cnn_log, "command": f"{command}  # 20 epochs, as the encoder had"}
    text = card("placenta", model, log, explained, {}, {})
    assert (
        f"{command}  # 20 epochs, as the encoder had\n" in text
        and "baseline" not in text.split("--epochs 20")[1][:60]
    )
