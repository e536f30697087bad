"""Training: every stage lowers its loss, stage 2 on cached conditioning, the calibrated model is saved,
and a stopped run resumes."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from diffmic.calibration import fit_fusion_weights, fit_temperature
from diffmic.conditioning import build_cache, conditioning_of
from diffmic.data.datasets import ArrayDataset, Splits
from diffmic.distributed import epoch_batches
from diffmic.losses import diffusion_loss, global_loss, local_loss
from diffmic.model import DiffMIC
from diffmic.options import SamplingOptions
from diffmic.train import TrainConfig, Trainer
from diffmic.transforms import augment, normalise
from tests.helpers import tiny_config

FAST_VAL = SamplingOptions(sampler="ddim", steps=5, samples=2)


def colour_dataset(n: int, seed: int, size: int = 128) -> ArrayDataset:
    """Images whose class is told by a bright square's colour channel: learnable in a few steps."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    images = rng.integers(0, 60, (n, size, size, 3), dtype=np.uint8)
    for i, y in enumerate(labels):
        r, c = rng.integers(0, size - 32, 2)
        images[i, r : r + 32, c : c + 32, y] = 255
    return ArrayDataset(images, labels)


def splits() -> Splits:
    return Splits(colour_dataset(48, 0), colour_dataset(12, 1), None, ["c0", "c1", "c2"], False)


def losses(trainer: Trainer) -> dict[str, float]:
    """Each stage's loss on the whole training set, with fixed noise."""
    model, data = trainer.model, trainer.splits.train
    model.eval()
    x = normalise(data.images, model.config)
    y = torch.as_tensor(data.labels)
    with torch.no_grad():
        g = model.dcg(x)
        d = diffusion_loss(
            model.denoiser,
            model.condition_features(x, g),
            torch.nn.functional.one_hot(y, 3).float(),
            (g.fused_prior, g.global_prior, g.local_prior),
            model.diffusion,
            0.5,
            3.0,
            torch.Generator().manual_seed(0),
        )
    return {
        "global": global_loss(g.global_logits, y).item(),
        "local": local_loss(g, y).item(),
        "diffusion": d.mse.item(),
    }


def config(**overrides) -> TrainConfig:
    values = dict(
        global_epochs=6,
        local_epochs=4,
        diffusion_epochs=40,
        val_every=20,
        cache_views=2,
        diffusion_batch_size=16,
        batch_size=8,
        global_lr=3e-3,
        local_lr=3e-3,
        lr=3e-3,
        augment=False,
        val_options=FAST_VAL,
        patience=100,
    )
    values.update(overrides)
    return TrainConfig(**values)


@pytest.mark.slow
def test_training_lowers_every_stage_loss_and_saves_the_calibrated_model(tmp_path):
    trainer = Trainer(tiny_config(3, fusion="fitted"), config(out_dir=str(tmp_path / "run")), splits())
    gains_before = trainer.model.denoiser.gain_table().clone()
    before = losses(trainer)
    assert trainer.run()
    after = losses(trainer)
    for stage in ("global", "local", "diffusion"):
        assert after[stage] < 0.8 * before[stage], stage
    model = DiffMIC.from_pretrained(tmp_path / "run")  # the best EMA model, calibrated
    log = json.loads((tmp_path / "run" / "train_log.json").read_text())
    stages = [h["stage"] for h in log["history"]]
    assert stages == ["global"] * 6 + ["local"] * 4 + ["cache"] + ["diffusion"] * 2
    assert model.config.temperature == log["fitted"]["temperature"] > 0
    assert list(model.config.fusion_weights) == log["fitted"]["fusion_weights"]
    assert log["data"] == {"train": len(trainer.splits.train), "validation": len(trainer.splits.val)}
    # the timestep gains trained away from their initialisation (all 1) and vary smoothly with t
    gains = model.denoiser.gain_table()
    assert torch.all(gains_before == 1)
    change = (gains - gains_before).abs().mean().item()
    step = (gains[1:] - gains[:-1]).abs().mean().item()
    spread = (gains.amax(0) - gains.amin(0)).mean().item()
    assert change > 1e-3 and step < spread / 50


def test_cached_conditioning_equals_what_the_model_computes_for_the_same_view():
    torch.manual_seed(0)
    model = DiffMIC(tiny_config(3)).eval()
    data = colour_dataset(10, 3)
    cache = build_cache(model, data, views=3, seed=5, batch_size=4)
    assert cache.features.shape[:2] == (10, 3) and cache.priors.shape == (10, 3, 3, 3)
    assert np.array_equal(cache.labels, data.labels)
    x = normalise(data.images[:4], model.config)
    generator = torch.Generator().manual_seed(5)
    for v in range(3):
        view = x if v == 0 else augment(x, generator)
        features, priors = conditioning_of(model, view)
        np.testing.assert_allclose(cache.features[:4, v], features.numpy(), atol=1e-5)
        np.testing.assert_allclose(cache.priors[:4, v], priors.numpy(), atol=1e-6)
    g = model.dcg(x)
    np.testing.assert_allclose(cache.priors[:4, 0, 0], g.fused_prior.detach().numpy(), atol=1e-6)
    np.testing.assert_allclose(cache.priors[:4, 0, 2], g.local_prior.detach().numpy(), atol=1e-6)


def test_a_bfloat16_cache_stores_float32_rows_close_to_the_float32_cache():
    torch.manual_seed(0)
    model = DiffMIC(tiny_config(3)).eval()
    data = colour_dataset(6, 4)
    exact = build_cache(model, data, views=2, seed=5, batch_size=3)
    fast = build_cache(model, data, views=2, seed=5, batch_size=3, dtype=torch.bfloat16)
    assert fast.features.dtype == np.float32 and fast.priors.dtype == np.float32
    error = np.linalg.norm(fast.features - exact.features) / np.linalg.norm(exact.features)
    assert 0 < error <= 0.2  # rounded (an untrained tiny network's near-zero features), not another image
    assert np.abs(fast.priors - exact.priors).max() <= 0.02


def test_cached_run_resumes_with_a_larger_epoch_cap_and_reuses_its_cache(tmp_path):
    run = tmp_path / "run"
    tc = config(out_dir=str(run), global_epochs=1, local_epochs=1, diffusion_epochs=4, val_every=2)
    first = Trainer(tiny_config(3), tc, splits())
    assert first.run()
    cache = run / "conditioning.npz"
    stamp = cache.stat().st_mtime_ns
    saved = json.loads(torch.load(first.checkpoint_path, weights_only=True)["state"])
    assert saved["stage"] == "diffusion" and saved["epoch"] == 4
    second = Trainer(tiny_config(3), config(**{**tc.__dict__, "diffusion_epochs": 8}), splits())
    assert second.resume()
    assert torch.equal(second.model.denoiser.out.weight, first.model.denoiser.out.weight)
    assert second.run()
    log = json.loads((run / "train_log.json").read_text())
    assert [h["epoch"] for h in log["history"] if h["stage"] == "diffusion"] == [2, 4, 6, 8]
    assert cache.stat().st_mtime_ns == stamp  # not rebuilt
    # the distribution check: fitted on the cached views, thresholded on validation, saved with the model
    model = DiffMIC.from_pretrained(run)
    assert model.ood_check is not None and model.config.ood_threshold == log["fitted"]["ood_threshold"]
    val = second.splits.val.images
    with torch.no_grad():
        val_scores = model.ood_scores(model.condition(normalise(val, model.config)).features)
    assert np.mean(val_scores <= model.config.ood_threshold) >= model.config.ood_acceptance


def test_stopped_run_resumes_where_it_stopped(tmp_path):
    tc = config(
        out_dir=str(tmp_path / "run"), global_epochs=2, local_epochs=1, diffusion_epochs=2, max_minutes=0.0
    )
    first = Trainer(tiny_config(3), tc, splits())
    assert not first.run()  # out of time right after the first step: checkpoint written
    saved = json.loads(torch.load(first.checkpoint_path, weights_only=True)["state"])
    assert saved["stage"] == "global" and saved["batch"] == 1
    tc.max_minutes = None
    second = Trainer(tiny_config(3), tc, splits())
    assert second.resume()
    assert torch.equal(second.model.dcg.cam_head.weight, first.model.dcg.cam_head.weight)
    assert second.run()
    assert (tmp_path / "run" / "model.safetensors").is_file()


def test_end_to_end_stage_two_trains_the_same_head(tmp_path):
    tc = config(out_dir=str(tmp_path / "run"), global_epochs=1, local_epochs=1, diffusion_epochs=1)
    trainer = Trainer(tiny_config(3), config(**{**tc.__dict__, "stage2": "end-to-end"}), splits())
    before = trainer.model.denoiser.out.weight.clone()
    assert trainer.run()
    assert not (tmp_path / "run" / "conditioning.npz").exists()
    assert not torch.equal(before, trainer.model.denoiser.out.weight)
    assert (tmp_path / "run" / "ood.safetensors").is_file()  # fitted on unaugmented training images
    with pytest.raises(ValueError, match="stage2"):
        TrainConfig(stage2="sometimes")


def test_a_checkpoint_written_before_the_distribution_check_existed_resumes(tmp_path):
    tc = config(out_dir=str(tmp_path / "run"), max_minutes=0.0)
    Trainer(tiny_config(3), tc, splits()).run()
    path = tmp_path / "run" / "checkpoint.pt"
    payload = torch.load(path, weights_only=True)
    old = {k: v for k, v in json.loads(payload["config"]).items() if not k.startswith("ood_")}
    torch.save({**payload, "config": json.dumps(old)}, path)
    assert Trainer(tiny_config(3, ood_acceptance=0.9), tc, splits()).resume()


def test_resume_refuses_another_config(tmp_path):
    tc = config(out_dir=str(tmp_path / "run"), max_minutes=0.0)
    Trainer(tiny_config(3), tc, splits()).run()
    other = Trainer(tiny_config(3, feature_dim=16), tc, splits())
    with pytest.raises(ValueError, match="another model config"):
        other.resume()


def test_a_saved_model_trains_one_stage_further(tmp_path):
    from diffmic.config import DiffMICConfig
    from diffmic.train import train

    tc = config(
        out_dir=str(tmp_path / "first"), global_epochs=2, local_epochs=1, diffusion_epochs=2, val_every=1
    )
    assert Trainer(tiny_config(3, fusion="fitted"), tc, splits()).run()
    saved = DiffMIC.from_pretrained(tmp_path / "first")
    cfg = DiffMICConfig.load(tmp_path / "first" / "config.json")
    more = config(**{**tc.__dict__, "out_dir": str(tmp_path / "more"), "local_epochs": 3})
    with pytest.raises(ValueError, match="another config"):
        Trainer(tiny_config(3), more, splits()).start_from(tmp_path / "first", "local")
    train(cfg, more, splits(), start_from=(tmp_path / "first", "local"))
    log = json.loads((tmp_path / "more" / "train_log.json").read_text())
    first = log["history"][0]
    assert (
        first["stage"] == "local" and first["epoch"] == 0 and first["start_from"] == str(tmp_path / "first")
    )
    assert [h["epoch"] for h in log["history"] if h["stage"] == "local"] == [0, 1, 2, 3]
    assert "global" not in {h["stage"] for h in log["history"]}  # began at the local stage
    further = DiffMIC.from_pretrained(tmp_path / "more")
    for (
        name,
        value,
    ) in saved.dcg.global_net.state_dict().items():  # untouched: the local stage does not train it
        torch.testing.assert_close(further.dcg.global_net.state_dict()[name], value)
    # the saved model's score is the one to beat: its local branch is kept unless a later epoch beats it
    start, *later = [h["score"] for h in log["history"] if h["stage"] == "local"]
    kept = all(
        torch.equal(further.dcg.local_net.state_dict()[k], v.to(torch.float32))
        for k, v in saved.dcg.local_net.state_dict().items()
        if v.is_floating_point()
    )
    assert kept == (max(later) <= start)


def test_a_saved_model_gets_a_new_local_branch(tmp_path):
    from diffmic.config import DiffMICConfig
    from diffmic.train import train

    tc = config(out_dir=str(tmp_path / "first"), global_epochs=1, local_epochs=1, diffusion_epochs=1)
    assert Trainer(tiny_config(3), tc, splits()).run()
    saved = DiffMIC.from_pretrained(tmp_path / "first")
    cfg = replace(DiffMICConfig.load(tmp_path / "first" / "config.json"), attention_dim=8)
    more = config(**{**tc.__dict__, "out_dir": str(tmp_path / "more")})
    with pytest.raises(ValueError, match="from the local stage"):
        Trainer(cfg, more, splits()).start_from(tmp_path / "first", "diffusion")
    with pytest.raises(ValueError, match="another config"):  # only the local architecture may change
        Trainer(replace(cfg, feature_dim=16), more, splits()).start_from(tmp_path / "first", "local")
    train(cfg, more, splits(), start_from=(tmp_path / "first", "local"))
    first = json.loads((tmp_path / "more" / "train_log.json").read_text())["history"][0]
    assert first["new"] == ["attention_dim"] and "score" not in first  # nothing to beat
    further = DiffMIC.from_pretrained(tmp_path / "more")
    assert further.dcg.attention_pool.V.out_features == 8
    for name, value in saved.dcg.global_net.state_dict().items():  # the global branch is the saved one
        torch.testing.assert_close(further.dcg.global_net.state_dict()[name], value)


def test_the_local_network_may_start_from_the_trained_global_one(tmp_path):
    tc = config(out_dir=str(tmp_path), local_init="global")
    trainer = Trainer(tiny_config(3), tc, splits())
    dcg = trainer.model.dcg
    assert not torch.equal(dcg.local_net.conv_stem.weight, dcg.global_net.conv_stem.weight)
    trainer._finish_stage("global")  # the global stage's end: the local stage begins
    assert trainer.state.stage == "local"
    for name, value in dcg.global_net.state_dict().items():
        torch.testing.assert_close(dcg.local_net.state_dict()[name], value)
    torch.testing.assert_close(trainer.ema.shadow["0.conv_stem.weight"], dcg.global_net.conv_stem.weight)
    with pytest.raises(ValueError, match="one backbone for both branches"):
        Trainer(tiny_config(3, local_backbone="test_resnet"), tc, splits())


def test_epoch_batches_are_a_seeded_permutation():
    class One:
        world, rank = 1, 0

    a = epoch_batches(50, 16, seed=1, epoch=0, dist=One())
    assert sorted(np.concatenate(a).tolist()) == list(range(50))
    assert [len(b) for b in a] == [16, 16, 16, 2]
    assert all(np.array_equal(x, y) for x, y in zip(a, epoch_batches(50, 16, 1, 0, One()), strict=True))
    assert not np.array_equal(a[0], epoch_batches(50, 16, 1, 1, One())[0])


def test_fit_temperature_prefers_sharper_softmax_for_confident_correct_predictions():
    labels = np.arange(30) % 3
    y0 = np.eye(3)[labels][:, None, :] * 0.5  # correct but timid label vectors
    assert fit_temperature(y0, labels) < 0.2
    wrong = np.eye(3)[(labels + 1) % 3][:, None, :] * 3.0  # confidently wrong
    assert fit_temperature(wrong, labels) > 2.0


def test_fitted_fusion_is_never_worse_than_the_better_branch_on_the_data_it_is_fitted_on():
    rng = np.random.default_rng(0)
    labels = np.arange(300) % 3
    informative = np.eye(3)[labels] * 2 + rng.normal(0, 1, (300, 3))
    noise = rng.normal(0, 1, (300, 3))
    wg, wl = fit_fusion_weights(informative, noise, labels)
    assert wg > 0.5 and wl < 0.3  # the near-chance branch gets little weight

    def nll(logits):
        return torch.nn.functional.cross_entropy(torch.as_tensor(logits), torch.as_tensor(labels)).item()

    assert nll(wg * informative + wl * noise) <= min(nll(informative), nll(noise)) + 1e-9


def test_fit_temperature_calibrates_the_mean_over_chains_of_the_softmax():
    """The shipped estimator averages each chain's softmax(y_0 / T): T minimises that estimator's NLL (not,
    e.g., the NLL of the softmax of the chains' mean label vector, which this data tells apart)."""
    rng = np.random.default_rng(1)
    n, s = 90, 4
    labels = np.arange(n) % 3
    right = rng.random((n, s)) < 0.7  # chains that disagree: most point at the label, some elsewhere
    target = np.where(right, labels[:, None], (labels[:, None] + 1 + rng.integers(0, 2, (n, s))) % 3)
    y0 = np.eye(3)[target] * 2.0 + rng.normal(0, 0.2, (n, s, 3))

    def nll(probs: np.ndarray) -> float:
        return float(-np.log(probs[np.arange(n), labels]).mean())

    def softmax(z: np.ndarray) -> np.ndarray:
        e = np.exp(z - z.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    grid = np.exp(np.linspace(np.log(0.02), np.log(5.0), 400))
    shipped = [nll(softmax(y0 / t).mean(1)) for t in grid]
    of_mean = grid[np.argmin([nll(softmax(y0.mean(1) / t)) for t in grid])]
    best = min(shipped)
    assert nll(softmax(y0 / of_mean).mean(1)) > best + 5e-3  # the two criteria disagree here
    assert nll(softmax(y0 / fit_temperature(y0, labels)).mean(1)) < best + 1e-3


def test_validation_scores_the_ema_weights_then_restores_the_live_ones(tmp_path):
    trainer = Trainer(tiny_config(3), config(out_dir=str(tmp_path)), splits())
    trainer._step("global", np.arange(8))  # the live weights move away from their EMA
    live = {k: v.clone() for k, v in trainer.modules.state_dict().items()}
    assert not torch.equal(live["1.weight"], trainer.ema.shadow["1.weight"])
    seen = {}

    def validate(stage):
        seen.update({k: v.clone() for k, v in trainer.modules.state_dict().items()})
        return {"score": 0.0}

    trainer._validate = validate
    trainer.validate("global")
    assert all(torch.equal(seen[k], v) for k, v in trainer.ema.shadow.items())
    assert all(torch.equal(trainer.modules.state_dict()[k], v) for k, v in live.items())


def test_a_stage_ends_with_the_ema_weights_of_its_best_validation(tmp_path):
    trainer = Trainer(tiny_config(3), config(out_dir=str(tmp_path), choose_on_validation=False), splits())
    trainer._step("global", np.arange(8))
    trainer._keep_if_best({"score": 0.5})
    best = {k: v.clone() for k, v in trainer.ema.shadow.items()}
    trainer._step("global", np.arange(8, 16))
    trainer._keep_if_best({"score": 0.4})  # worse: the best stays
    cam_head = trainer.model.dcg.cam_head
    assert not torch.equal(cam_head.weight, best["1.weight"])
    trainer._finish_stage("global")
    assert trainer.state.stage == "local"
    torch.testing.assert_close(cam_head.weight, best["1.weight"], rtol=0, atol=0)
    for name, value in trainer.model.dcg.global_net.state_dict().items():
        torch.testing.assert_close(value, best[f"0.{name}"], rtol=0, atol=0)


def test_a_stage_ends_after_patience_validations_without_improvement(tmp_path):
    tc = config(out_dir=str(tmp_path), global_epochs=6, patience=2, batch_size=24)
    trainer = Trainer(tiny_config(3), tc, splits())
    scores = iter([0.5, 0.6, 0.6, 0.55, 0.9, 0.9])  # best at epoch 2, then two without improvement
    trainer.validate = lambda stage: {"score": next(scores)}
    trainer._finish_stage = lambda stage: None
    assert trainer._run_stage("global")
    assert trainer.state.epoch == 4 and trainer.state.stale == 2 and trainer.state.best == 0.6
