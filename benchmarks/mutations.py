"""Mutation testing: would the fast tests notice if documented behaviour broke?

Each record below is a one-line break of something README or a docstring promises (the answer taken from
one chain, a sign flipped, a timestep off by one, a state not restored...): a file, the exact text to
replace (found exactly once), its replacement, what the break means, and the test files that should
notice it. Each mutation is applied alone to a temporary copy of the working tree (the repository itself is
never touched), those test files run (``-x -q -m "not slow"``, one torch thread, a time limit each), and the
mutation is ``killed`` when they fail (or time out), ``survived`` when they pass. A record whose text is no
longer in the source is reported ``stale`` (update the record), never skipped silently. Each test run is a
forked pytest (POSIX): torch, timm and gradio are imported once beforehand, the package and the tests
afresh from the mutated copy, so a run costs its tests' time rather than ~10 s of imports.

    python benchmarks/mutations.py                 # all; prints survivors and the kill rate
    python benchmarks/mutations.py --only NAME     # one (repeatable); --list shows the names
    python benchmarks/mutations.py --json          # machine-readable report on stdout

The unmutated copy first runs the union of the chosen test files (``--no-baseline`` skips it): a mutation
only counts as killed when those tests pass without it. The exit status is 0 when every mutation is killed
and none is stale. ``tests/test_mutations.py`` checks that every record still applies to the source.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IGNORED = (".git", "__pycache__", ".pytest_cache", ".ruff_cache", ".gradio", "runs", ".cache", "*.egg-info")
# third-party modules imported once by this process, so that each forked test run starts in a second
# rather than the ~10 s of importing torch, timm and gradio (the package and the tests are imported afresh
# by each run, from the mutated copy)
PRELOAD = ("torch", "timm", "scipy.stats", "sklearn.metrics", "PIL.Image", "gradio", "pytorch_grad_cam")


@dataclass(frozen=True)
class Mutation:
    """One break of documented behaviour: ``old`` (found exactly once in ``file``) becomes ``new``."""

    name: str
    file: str
    old: str
    new: str
    description: str
    tests: tuple[str, ...]


# the test files that tend to catch each module's breaks
DOC = "tests/test_documented_behaviour.py"
PIPE = ("tests/test_estimator.py", "tests/test_pipeline.py", DOC)
DIFF = ("tests/test_diffusion.py", "tests/test_lean.py", DOC)
LEAN = ("tests/test_lean.py", "tests/test_estimator.py")
LOSS = ("tests/test_losses.py", DOC, "tests/test_train.py")
UNC = ("tests/test_metrics.py", "tests/test_estimator.py")
OOD = ("tests/test_ood.py",)
ROIS = ("tests/test_dcg.py", "tests/test_bundled_rois.py")
EXPLAIN = ("tests/test_explain.py", "tests/test_pipeline.py", "tests/test_selection.py", DOC)
TRAIN = ("tests/test_train.py", "tests/test_resume.py")
RESUME = ("tests/test_resume.py", "tests/test_train.py")
BATCH = ("tests/test_batching.py",)
EMA = ("tests/test_ema.py", "tests/test_train.py")

M = Mutation
MUTATIONS: list[Mutation] = [
    # ---------------------------------------------------------------- the five breaks of issue 28
    M(
        "answer-first-chain",
        "diffmic/pipeline.py",
        "mean = answer_probabilities(sample_probs)",
        "mean = sample_probs[0]",
        "the answer from the first chain instead of the mean over the chains",
        PIPE,
    ),
    M(
        "temperature-ignored",
        "diffmic/pipeline.py",
        "options.samples, generator, self.config.temperature",
        "options.samples, generator, 1.0",
        "the fitted temperature ignored: the answer is softmax(y_0), not softmax(y_0 / T)",
        PIPE,
    ),
    M(
        "resume-forgets-optimizer-and-ema",
        "diffmic/checkpoint.py",
        '        self.optimizer.load_state_dict(payload["optimizer"])\n'
        '        self.ema.load_state_dict(payload["ema"])\n',
        "",
        "a resumed run starts with a fresh optimiser and EMA",
        RESUME,
    ),
    M(
        "mmd-dropped",
        "diffmic/losses.py",
        "DiffusionLoss(mse + mmd_weight * (m_g + m_l), mse, m_g, m_l)",
        "DiffusionLoss(mse, mse, m_g, m_l)",
        "the MMD regulariser left out of the training loss",
        LOSS,
    ),
    M(
        "gradcam-class-0",
        "diffmic/pipeline.py",
        "gradcam = self.gradcam(prepared, idx) if explain else None",
        "gradcam = self.gradcam(prepared, 0) if explain else None",
        "Grad-CAM computed for class 0 instead of the answer",
        EXPLAIN,
    ),
    # ---------------------------------------------------------------- pipeline
    M(
        "saliency-of-class-0",
        "diffmic/pipeline.py",
        "answer = torch.tensor([idx], device=g.cam.device)",
        "answer = torch.tensor([0], device=g.cam.device)",
        "the DCG saliency map of class 0 instead of the answer's",
        PIPE,
    ),
    M(
        "rois-least-attended-first",
        "diffmic/pipeline.py",
        'order = np.argsort(-attention, kind="stable")',
        'order = np.argsort(attention, kind="stable")',
        "the ROIs listed least attended first (documented: rank 1 = most attended)",
        ("tests/test_pipeline.py",),
    ),
    M(
        "roi-boxes-in-global-view-pixels",
        "diffmic/pipeline.py",
        "boxes = g.boxes[0].cpu().numpy()[order] * s",
        "boxes = g.boxes[0].cpu().numpy()[order]",
        "ROI boxes not scaled to the input's pixels (the crops cut from the wrong place)",
        ("tests/test_pipeline.py", "tests/test_bundled_rois.py"),
    ),
    M(
        "prior-option-ignored",
        "diffmic/pipeline.py",
        "conditioning.prior(options.prior), options, generator)",
        'conditioning.prior("fused"), options, generator)',
        "the chain always starts from the fused prior, whatever options.prior says",
        PIPE,
    ),
    M(
        "seed-ignored",
        "diffmic/pipeline.py",
        "generator = torch.Generator().manual_seed(int(options.seed))",
        "generator = torch.Generator().manual_seed(0)",
        "the chains' seed option ignored",
        PIPE,
    ),
    M(
        "folded-head-never-refreshed",
        "diffmic/pipeline.py",
        "if self._folded is None or self._folded[0] != stamp:",
        "if self._folded is None:",
        "the folded denoiser kept after the weights change (a trained model answers with stale weights)",
        ("tests/test_pipeline.py", "tests/test_lean.py", DOC),
    ),
    # ---------------------------------------------------------------- chain / lean
    M(
        "softmax-over-chains",
        "diffmic/chain.py",
        "return (y / temperature).softmax(-1)",
        "return (y / temperature).softmax(1)",
        "label vectors turned into probabilities over the wrong axis (the chains, not the classes)",
        PIPE,
    ),
    M(
        "temperature-multiplies",
        "diffmic/chain.py",
        "return (y / temperature).softmax(-1)",
        "return (y * temperature).softmax(-1)",
        "softmax(y * T) instead of softmax(y / T)",
        PIPE,
    ),
    M(
        "lean-noise-shifted",
        "diffmic/lean.py",
        "noise[noisy] = torch.stack(draws[1:])",
        "noise[noisy] = torch.stack(draws[:-1])",
        "the folded chain reuses y_T's draw as the first step's noise (not the plain chain's numbers)",
        LEAN,
    ),
    M(
        "softplus-tail-unbounded",
        "diffmic/denoiser.py",
        "tail = x.abs().neg_().exp_().add_(1).log_()",
        "tail = x.abs().exp_().add_(1).log_()",
        "the head's softplus adds log(1 + exp(|x|)), not log(1 + exp(-|x|)): wrong values, overflow",
        ("tests/test_lean.py", "tests/test_train.py"),
    ),
    M(
        "lean-gate-skipped",
        "diffmic/lean.py",
        "h = softplus_(h).mul_(gate)",
        "h = softplus_(h)",
        "the folded head ignores the image gate: every image gets the same chain",
        LEAN,
    ),
    M(
        "lean-batchnorm-mean-sign",
        "diffmic/denoiser.py",
        "shifts.append((linear.bias * gains[:, i] - norm.running_mean) * k + norm.bias)",
        "shifts.append((linear.bias * gains[:, i] + norm.running_mean) * k + norm.bias)",
        "batch-norm's running mean folded with the wrong sign",
        LEAN,
    ),
    M(
        "lean-drops-temperature",
        "diffmic/lean.py",
        "yield DenoiseState(i, len(steps), steps[i], history[i].view(b, samples, c), temperature)",
        "yield DenoiseState(i, len(steps), steps[i], history[i].view(b, samples, c))",
        "the folded chain's states forget the temperature",
        LEAN,
    ),
    # ---------------------------------------------------------------- diffusion
    M(
        "forward-prior-sign",
        "diffmic/diffusion.py",
        "return sab * y0 + (1 - sab) * prior, _bcast",
        "return sab * y0 - (1 - sab) * prior, _bcast",
        "q(y_t | y0, prior) drifts away from the prior instead of towards it",
        DIFF,
    ),
    M(
        "init-sample-without-prior",
        "diffmic/sampler.py",
        "return prior + gaussian_like(prior, generator)",
        "return gaussian_like(prior, generator)",
        "y_T ~ N(0, I) instead of N(prior, I): the plain chain starts from the wrong prior",
        DIFF,
    ),
    M(
        "ddpm-posterior-coefficient",
        "diffmic/ddpm_ddim.py",
        "g1 = (1 - ab_prev) * math.sqrt(alpha_t) / (1 - ab_t)",
        "g1 = (1 - ab_prev) * alpha_t / (1 - ab_t)",
        "CARD's posterior mean: the y_t coefficient without its square root",
        DIFF,
    ),
    M(
        "ddpm-variance-beta",
        "diffmic/ddpm_ddim.py",
        "var = (1 - ab_prev) / (1 - ab_t) * beta_t",
        "var = beta_t",
        "the posterior variance replaced by beta_t",
        DIFF,
    ),
    M(
        "ddim-eta-ignored",
        "diffmic/ddpm_ddim.py",
        "sigma = self.eta * math.sqrt(",
        "sigma = 0.0 * math.sqrt(",
        "DDIM's eta ignored (always deterministic)",
        DIFF,
    ),
    M(
        "chain-ends-at-t1",
        "diffmic/sampler.py",
        "grid = torch.linspace(T - 1, 0, n, dtype=torch.float64)",
        "grid = torch.linspace(T - 1, 1, n, dtype=torch.float64)",
        "a re-spaced chain stops at t = 1 instead of t = 0 (off by one)",
        DIFF,
    ),
    M(
        "predict-y0-noise-sign",
        "diffmic/diffusion.py",
        "- _bcast(self.sqrt_one_minus_alphas_cumprod, t, y_t) * eps) / sab",
        "+ _bcast(self.sqrt_one_minus_alphas_cumprod, t, y_t) * eps) / sab",
        "predict_y0 adds the noise instead of removing it",
        ("tests/test_diffusion.py", "tests/test_explain.py", DOC),
    ),
    # ---------------------------------------------------------------- losses
    M(
        "mmd-cross-term-sign",
        "diffmic/losses.py",
        "- 2 * gaussian_kernel(x, y, bandwidth).mean()",
        "+ 2 * gaussian_kernel(x, y, bandwidth).mean()",
        "MMD's cross term with the wrong sign",
        LOSS,
    ),
    M(
        "mmd-local-is-global",
        "diffmic/losses.py",
        "m_g, m_l = mmd(eps, eps_g, bandwidth), mmd(eps, eps_l, bandwidth)",
        "m_g, m_l = mmd(eps, eps_g, bandwidth), mmd(eps, eps_g, bandwidth)",
        "the local-granularity MMD term measures the global pass",
        LOSS,
    ),
    M(
        "timesteps-not-antithetic",
        "diffmic/losses.py",
        "torch.cat([half, timesteps - 1 - half])",
        "torch.cat([half, half])",
        "the training timesteps' second half not mirrored (T-1-t)",
        LOSS,
    ),
    M(
        "local-loss-without-fused",
        "diffmic/losses.py",
        "F.cross_entropy(guidance.local_logits, labels) + F.cross_entropy(guidance.fused_logits, labels)",
        "F.cross_entropy(guidance.local_logits, labels)",
        "the local stage's loss forgets the fused logits",
        LOSS,
    ),
    # ---------------------------------------------------------------- uncertainty
    M(
        "estimator-first-chain",
        "diffmic/uncertainty.py",
        "return sample_probs.mean(-2)",
        "return sample_probs[..., 0, :]",
        "the one definition of the estimator takes the first chain",
        UNC,
    ),
    M(
        "distinguishable-flipped",
        "diffmic/uncertainty.py",
        "distinguishable=bool(p_value < alpha)",
        "distinguishable=bool(p_value > alpha)",
        "the top-2 classes called distinguishable when the t-test says they are not",
        UNC,
    ),
    M(
        "majority-tie-lowest-index",
        "diffmic/uncertainty.py",
        "majority = int(tied[np.argmax(mean[tied])])",
        "majority = int(tied[0])",
        "a tied vote goes to the lower index instead of the higher mean probability",
        UNC,
    ),
    M(
        "std-sample-ddof",
        "diffmic/uncertainty.py",
        "std = x.std(axis=0)",
        "std = x.std(axis=0, ddof=1)",
        "the documented population standard deviation (ddof=0) replaced by the sample one",
        UNC,
    ),
    M(
        "close-call-ignores-t-test",
        "diffmic/uncertainty.py",
        '("t-test", n_samples >= 2 and not distinguishable)',
        '("t-test", False)',
        "runs that split between the top two (t-test: not told apart) stated as a clear answer",
        ("tests/test_uncertainty.py", "tests/test_app_handlers.py"),
    ),
    M(
        "chart-median-not-mean",
        "app/figures.py",
        "return traj.mean[idx], traj.low[idx], traj.high[idx]",
        "return np.median(traj.probs[: traj.steps_done][idx], 1), traj.low[idx], traj.high[idx]",
        "the trajectory lines are the median of the runs again, not the card's mean: chart and card disagree",
        ("tests/test_app_handlers.py",),
    ),
    M(
        "unassessable-answer-shown",
        "app/diagnose.py",
        "fits = assessable(output.ood)",
        "fits = True",
        "an image the distribution check flags gets the class answer on the card, not 'cannot be assessed'",
        ("tests/test_app_handlers.py",),
    ),
    # ---------------------------------------------------------------- ood
    M(
        "ood-flag-flipped",
        "diffmic/ood.py",
        "flagged = bool(score > threshold)",
        "flagged = bool(score < threshold)",
        "images that look like the training data flagged, the others accepted",
        OOD,
    ),
    M(
        "ood-farthest-class",
        "diffmic/ood.py",
        "return (d2.min(-1).values / self.projection.shape[0])",
        "return (d2.max(-1).values / self.projection.shape[0])",
        "the distance to the farthest class mean instead of the nearest",
        OOD,
    ),
    M(
        "ood-no-shrinkage",
        "diffmic/ood_fit.py",
        "shrinkage = 0.0 if delta == 0 else float(min(beta, delta) / delta)",
        "shrinkage = 0.0",
        "the Ledoit-Wolf shrinkage never applied",
        OOD,
    ),
    M(
        "ood-threshold-off-by-one",
        "diffmic/ood_fit.py",
        "return float(values[k - 1])",
        "return float(values[max(k - 2, 0)])",
        "the conformal threshold one rank too low (accepts fewer than promised)",
        OOD,
    ),
    # ---------------------------------------------------------------- rois / dcg
    M(
        "nms-never-blocks",
        "diffmic/rois.py",
        "overlap = box_iou(boxes, boxes).to(score.device) > nms_iou",
        "overlap = box_iou(boxes, boxes).to(score.device) > 1.0",
        "non-maximum suppression off: the K crops pile up on one spot",
        ROIS,
    ),
    M(
        "field-ignored",
        "diffmic/rois.py",
        "penalty = (~eligible).float() * 2 * span",
        "penalty = (~eligible).float() * 0 * span",
        "boxes on the dark background chosen like any other",
        ROIS,
    ),
    M(
        "summed-area-corner-sign",
        "diffmic/rois.py",
        "- sat[:, y1, x0] + sat[:, y0, x0]",
        "- sat[:, y1, x0] - sat[:, y0, x0]",
        "the summed-area table's corner subtracted instead of added",
        ROIS,
    ),
    M(
        "crops-transposed",
        "diffmic/rois.py",
        "flat = (ys[..., :, None] * w + xs[..., None, :])",
        "flat = (xs[..., :, None] * w + ys[..., None, :])",
        "the crops cut with x and y swapped",
        ROIS,
    ),
    M(
        "roi-map-least-likely-class",
        "diffmic/rois.py",
        "top = logits.argmax(-1)",
        "top = logits.argmin(-1)",
        "ROIs chosen on the evidence of the least likely class",
        ROIS,
    ),
    M(
        "evidence-not-contrasted",
        "diffmic/rois.py",
        "against_mean = cam - cam.mean(1, keepdim=True)",
        "against_mean = cam",
        "a class's evidence is its raw CAM channel, not its channel minus the mean over classes",
        ROIS,
    ),
    M(
        "attention-softmax-over-batch",
        "diffmic/dcg.py",
        ".squeeze(-1).softmax(-1)",
        ".squeeze(-1).softmax(0)",
        "gated attention normalised over the batch instead of the K crops",
        ("tests/test_dcg.py", "tests/test_pipeline.py"),
    ),
    M(
        "fusion-weights-swapped",
        "diffmic/dcg.py",
        "return weights[0] * global_logits + weights[1] * local_logits",
        "return weights[1] * global_logits + weights[0] * local_logits",
        "the fitted fusion weights applied to the wrong branches",
        ("tests/test_dcg.py", "tests/test_train.py"),
    ),
    # ---------------------------------------------------------------- explain
    M(
        "gradcam-target-class-0",
        "diffmic/explain.py",
        "targets=[ClassifierOutputTarget(int(class_index))]",
        "targets=[ClassifierOutputTarget(0)]",
        "grad_cam explains class 0 whatever class it is asked for",
        EXPLAIN,
    ),
    M(
        "gradcam-stage-ignored",
        "diffmic/explain.py",
        "stage = model.config.cam_stage if stage is None else stage",
        "stage = -1",
        "the Grad-CAM stage (chosen on validation, or asked for) ignored",
        EXPLAIN,
    ),
    # ---------------------------------------------------------------- calibration / EMA / training
    M(
        "temperature-fit-on-mean-label",
        "diffmic/calibration.py",
        "p = answer_from_labels(y, temp).clamp_min(1e-12)",
        "p = (y.mean(1) / temp).softmax(-1).clamp_min(1e-12)",
        "the temperature calibrated for softmax of the mean label vector, not the shipped mean of softmaxes",
        TRAIN,
    ),
    M(
        "ema-warmup-dropped",
        "diffmic/ema.py",
        "d = min(self.decay, (1 + self.updates) / (10 + self.updates))",
        "d = self.decay",
        "the EMA's documented warm-up dropped (short runs dominated by the initial weights)",
        EMA,
    ),
    M(
        "ema-weights-swapped",
        "diffmic/ema.py",
        "self.shadow[k].mul_(d).add_(v.detach(), alpha=1 - d)",
        "self.shadow[k].mul_(1 - d).add_(v.detach(), alpha=d)",
        "shadow = (1 - d) * shadow + d * current: the EMA barely averages",
        EMA,
    ),
    M(
        "ema-update-skipped",
        "diffmic/stage_loop.py",
        "        self.ema.update(self.modules)\n",
        "",
        "the EMA never updated: the validated and saved weights are the initial ones",
        TRAIN,
    ),
    M(
        "validated-with-live-weights",
        "diffmic/stage_loop.py",
        "return self._with_ema(lambda: self._validate(stage))",
        "return self._validate(stage)",
        "validation scores the live weights, not the EMA weights that are kept",
        TRAIN,
    ),
    M(
        "best-weights-not-restored",
        "diffmic/stage_loop.py",
        "            self.modules.load_state_dict(self.best)\n",
        "            pass\n",
        "a stage ends with its last weights instead of the best validation's EMA weights",
        TRAIN,
    ),
    M(
        "resume-forgets-generator",
        "diffmic/checkpoint.py",
        '        self.generator.set_state(payload["generator"])\n',
        "",
        "a resumed run redraws the augmentations and noise the stopped run had drawn",
        RESUME,
    ),
    M(
        "resume-forgets-best",
        "diffmic/checkpoint.py",
        '        self.best = payload["best"] or None\n',
        "        self.best = None\n",
        "a resumed run forgets the best weights so far",
        RESUME,
    ),
    M(
        "resumed-epoch-loss-partial",
        "diffmic/stage_loop.py",
        "self.state.batch, self.state.loss_sum = 0, 0.0",
        "self.state.batch = 0",
        "an epoch's mean loss also counts the earlier epochs' losses",
        RESUME,
    ),
    M(
        "patience-ignored",
        "diffmic/stage_loop.py",
        "while self.state.epoch < epochs and self.state.stale < self.tc.patience:",
        "while self.state.epoch < epochs:",
        "a stage runs to its epoch cap although validation stopped improving",
        TRAIN,
    ),
    M(
        "validation-schedule-off-by-one",
        "diffmic/stage_loop.py",
        "return (self.state.epoch + 1) % every == 0 or",
        "return self.state.epoch % every == 0 or",
        "the cached stage validates after epochs 1, 11, 21... instead of 10, 20, 30...",
        TRAIN,
    ),
    M(
        "no-checkpoint-at-epoch-end",
        "diffmic/stage_loop.py",
        "        self.state.batch, self.state.loss_sum = 0, 0.0\n        self.save_checkpoint()\n",
        "        self.state.batch, self.state.loss_sum = 0, 0.0\n",
        "no checkpoint at an epoch's end (documented: every few minutes and at every epoch's end)",
        RESUME,
    ),
    M(
        "encoder-stage-without-encoder",
        "diffmic/train.py",
        'return "diffusion" if nxt == "encoder" and self.model.encoder is None else nxt',
        "return nxt",
        "a model without an encoder of its own is sent into the encoder stage after the local one",
        TRAIN,
    ),
    M(
        "cached-view-always-0",
        "diffmic/conditioning.py",
        "view = training_batch(pixels, model.config, generator if v else None)",
        "view = training_batch(pixels, model.config, None)",
        "the cache's augmented views are all the unaugmented image",
        TRAIN,
    ),
    M(
        "batch-one-seed",
        "diffmic/batching.py",
        "generators = [torch.Generator().manual_seed(int(r.options.seed)) for r in alive]",
        "generators = [torch.Generator().manual_seed(int(alive[0].options.seed)) for r in alive]",
        "batched requests all draw the first caller's noise instead of their own seed's",
        BATCH,
    ),
    M(
        "batch-rows-shifted",
        "diffmic/lean.py",
        "return torch.cat([gaussian_cpu((rows, *shape[1:]), dtype, g) for g in generator])",
        "return torch.cat([gaussian_cpu((rows, *shape[1:]), dtype, g) for g in generator[::-1]])",
        "each image of a batch gets another caller's noise",
        BATCH,
    ),
]


# ---------------------------------------------------------------------------- applying and running
def applies(m: Mutation, root: Path = ROOT) -> str:
    """``ok`` when ``m.old`` occurs exactly once in its file, else ``stale`` (absent) or ``ambiguous``."""
    path = root / m.file
    count = path.read_text().count(m.old) if path.is_file() else 0
    return "ok" if count == 1 else "stale" if count == 0 else "ambiguous"


def mutated_source(m: Mutation, root: Path = ROOT) -> str:
    """The file's text with the mutation applied (the record must apply)."""
    return (root / m.file).read_text().replace(m.old, m.new, 1)


def copy_tree(root: Path, dest: Path) -> Path:
    """A copy of the working tree (without .git and caches) to mutate."""
    target = dest / "repo"
    shutil.copytree(root, target, ignore=shutil.ignore_patterns(*IGNORED), symlinks=True)
    return target


class OneThread:
    """pytest plugin: one intra-op torch thread, set after the tests' conftest (two threads crawl on a
    shared 2-core machine)."""

    def pytest_collection_finish(self, session) -> None:
        import torch

        torch.set_num_threads(1)


def preload() -> None:
    """Import the heavy third-party modules before forking (never the package or the tests)."""
    import importlib

    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            pass


def _pytest_in_child(repo: Path, args: list[str], log: Path) -> int:
    """Fork; the child runs pytest on ``args`` in ``repo`` with its output in ``log``. Returns the pid."""
    pid = os.fork()
    if pid:
        try:
            os.setpgid(pid, pid)  # set on both sides of the fork: whichever runs first
        except OSError:
            pass
        return pid
    code = 3
    try:
        os.setpgid(0, 0)  # its own process group: a timeout ends whatever the tests started too
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.chdir(repo)
        sys.path.insert(0, str(repo))
        import pytest

        code = int(pytest.main(args, plugins=[OneThread()]))
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _wait(pid: int, timeout: float) -> int | None:
    """The child's exit status, or None (and the child killed) after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.05)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return None


def run_tests(repo: Path, tests: tuple[str, ...], timeout: float) -> tuple[str, float, str]:
    """Run the ``tests`` that exist in ``repo``: (outcome, seconds, first failure), the outcome pass, fail,
    timeout or error (pytest itself failed, or no test file exists)."""
    present = [t for t in tests if (repo / t).is_file()]
    if not present:
        return "error", 0.0, "none of the test files exists"
    args = ["-x", "-q", "-m", "not slow", "-p", "no:cacheprovider", *present]
    log = repo.parent / "pytest.log"
    start = time.monotonic()
    code = _wait(_pytest_in_child(repo, args, log), timeout)
    seconds = time.monotonic() - start
    output = log.read_text(errors="replace")
    if code is None:
        return "timeout", seconds, f"no result within {timeout:g} s"
    if code == 0:
        return "pass", seconds, ""
    if code in (1, 2):  # failures, or errors while collecting (the mutant does not import)
        failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", output, flags=re.M)
        return "fail", seconds, failed[0] if failed else "a test failed"
    tail = output.strip().splitlines()[-1:] or [""]
    return "error", seconds, f"pytest exit {code}: {tail[0][:200]}"


@dataclass
class Result:
    """The outcome of one mutation."""

    name: str
    file: str
    description: str
    tests: list[str]
    status: str  # killed, survived, stale, ambiguous, timeout (counted as killed), error
    seconds: float
    detail: str  # the first failing test, or why nothing ran
    missing: list[str]  # listed test files that do not exist (yet)


def run_mutation(m: Mutation, repo: Path, timeout: float) -> Result:
    """Apply ``m`` to the copy, run its tests, restore the file."""
    missing = [t for t in m.tests if not (repo / t).is_file()]
    base = Result(m.name, m.file, m.description, list(m.tests), "", 0.0, "", missing)
    state = applies(m, repo)
    if state != "ok":
        base.status, base.detail = state, f"old text found {'0' if state == 'stale' else '>1'} times"
        return base
    path = repo / m.file
    original = path.read_text()
    path.write_text(original.replace(m.old, m.new, 1))
    try:
        outcome, base.seconds, base.detail = run_tests(repo, m.tests, timeout)
    finally:
        path.write_text(original)
    base.status = {"pass": "survived", "fail": "killed", "timeout": "timeout"}.get(outcome, "error")
    return base


def summary(results: list[Result]) -> dict:
    """Counts and the kill rate over the mutations that applied (a timeout counts as killed)."""
    applied = [r for r in results if r.status in ("killed", "survived", "timeout", "error")]
    killed = [r for r in applied if r.status in ("killed", "timeout")]
    return {
        "mutations": len(results),
        "applied": len(applied),
        "killed": len(killed),
        "kill_rate": round(len(killed) / len(applied), 4) if applied else None,
        "survived": [r.name for r in applied if r.status == "survived"],
        "errors": [r.name for r in applied if r.status == "error"],
        "timeouts": [r.name for r in applied if r.status == "timeout"],
        "stale": [r.name for r in results if r.status in ("stale", "ambiguous")],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", default=[], metavar="NAME", help="run this mutation only")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--timeout", type=float, default=240.0, help="seconds per mutation's test run")
    parser.add_argument("--no-baseline", action="store_true", help="skip the unmutated run of the tests")
    parser.add_argument("--root", type=Path, default=ROOT, help="the working tree to copy")
    args = parser.parse_args(argv)

    if args.list:
        for m in MUTATIONS:
            print(f"{m.name:36s} {m.file:24s} {m.description}")
        return 0
    chosen = [m for m in MUTATIONS if not args.only or m.name in args.only]
    unknown = set(args.only) - {m.name for m in MUTATIONS}
    if unknown:
        parser.error(f"unknown mutation(s): {', '.join(sorted(unknown))} (see --list)")

    def say(text: str) -> None:
        print(text, file=sys.stderr if args.json else sys.stdout, flush=True)

    for key, value in {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}.items():
        os.environ[key] = value
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    sys.dont_write_bytecode = True
    start = time.monotonic()
    preload()
    with tempfile.TemporaryDirectory(prefix="diffmic-mutations-") as tmp:
        repo = copy_tree(args.root.resolve(), Path(tmp))
        baseline = None
        if not args.no_baseline:
            files = tuple(dict.fromkeys(t for m in chosen if applies(m, repo) == "ok" for t in m.tests))
            outcome, seconds, detail = run_tests(repo, files, args.timeout * 4)
            baseline = {"outcome": outcome, "seconds": round(seconds, 1), "detail": detail}
            say(f"baseline (unmutated, {len(files)} test files): {outcome} in {seconds:.0f} s {detail}")
            if outcome != "pass":
                say("the unmutated tests do not pass: fix them first (or --no-baseline)")
                return 2
        results = []
        for m in chosen:
            r = run_mutation(m, repo, args.timeout)
            results.append(r)
            gaps = f"  (missing: {', '.join(r.missing)})" if r.missing else ""
            say(f"{r.status:9s} {r.name:36s} {r.seconds:6.1f} s  {r.detail}{gaps}")
    report = summary(results)
    report["seconds"] = round(time.monotonic() - start, 1)
    if args.json:
        print(json.dumps({**report, "baseline": baseline, "results": [asdict(r) for r in results]}, indent=2))
    else:
        rate = "n/a" if report["kill_rate"] is None else f"{100 * report['kill_rate']:.1f} %"
        print(
            f"\nkilled {report['killed']} of {report['applied']} applied mutations: kill rate {rate} "
            f"({report['seconds']:.0f} s)"
        )
        for key in ("survived", "stale", "errors", "timeouts"):
            if report[key]:
                print(f"{key}: {', '.join(report[key])}")
    ok = report["killed"] == report["applied"] and not report["stale"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
