"""Latency of a Diagnose run as a user sees it: ``python app.py`` in a subprocess, called with gradio_client.

    python benchmarks/app_latency.py            # realistic-size random model, default settings
    python benchmarks/app_latency.py --json     # {"first_frame_s": ..., "full_run_s": ..., ...}
    python benchmarks/app_latency.py --weights weights   # the bundled models instead

It measures, from ``client.submit`` (which also uploads the image) on 127.0.0.1:

- ``first_frame_s``: until the first streamed update arrives (maps, prior, empty trajectory), and
- ``full_run_s``: until the last update (label, Grad-CAM, downloads) of the full T = 1000 chain,

with the app's default settings (sampler, all T steps, samples, seed), as the median over ``--runs``
runs after one warm-up run. The full run is also given in units (``benchmarks/units.py``: one resnet18
forward pass at 224 px, 2 threads), measured in this process while the app is idle, before the first
run and after each one (the median). Targets: first frame within 1 s, full run within 25 units.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

FIRST_FRAME_TARGET_S = 1.0
FULL_RUN_TARGET_UNITS = 25.0
UNIT_THREADS = 2


def realistic_model(weights: Path) -> None:
    """A random DiffMIC of the bundled size (resnet10t x 3, 128 px, T = 1000, 5 classes) in weights/fundus."""
    import torch

    from diffmic.config import DiffMICConfig
    from diffmic.data.synthetic import GENERATORS
    from diffmic.model import DiffMIC

    torch.manual_seed(0)
    config = DiffMICConfig(
        class_names=list(GENERATORS["fundus"].class_names),
        task="fundus",
        ordinal=True,
        image_size=128,
        global_backbone="resnet10t",
        local_backbone="resnet10t",
        encoder_backbone="resnet10t",
        timesteps=1000,
    )
    DiffMIC(config).save_pretrained(weights / "fundus")


def example_image(folder: Path) -> Path:
    """A generated fundus image (512 px, as a user upload would be larger than the model input)."""
    from PIL import Image

    from diffmic.data.synthetic import GENERATORS, generate_sample

    sample = generate_sample("fundus", 0, 0, 512)
    name = GENERATORS["fundus"].class_names[sample.label].lower().replace(" ", "_")
    path = folder / "fundus" / f"{name}_0.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sample.image).save(path)
    return path


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(weights: Path, assets: Path, port: int, log: Path) -> subprocess.Popen:
    """``python app.py`` on 127.0.0.1:port, offline, reading models from ``weights``."""
    env = dict(
        os.environ,
        DIFFMIC_WEIGHTS_DIR=str(weights),
        DIFFMIC_ASSETS_DIR=str(assets),
        GRADIO_SERVER_NAME="127.0.0.1",
        GRADIO_SERVER_PORT=str(port),
        GRADIO_ANALYTICS_ENABLED="False",
        HF_HUB_OFFLINE="1",
    )
    return subprocess.Popen(
        [sys.executable, "app.py"], cwd=REPO, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT
    )


def wait_until_up(url: str, proc: subprocess.Popen, timeout_s: float = 180.0) -> None:
    """Poll the page until it answers (the app warms its default model before it listens)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the app exited with status {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.25)
    raise TimeoutError(f"the app did not answer at {url} within {timeout_s:.0f} s")


def stop_app(proc: subprocess.Popen) -> None:
    """Terminate the app, killing it if it does not exit within 15 s."""
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


def one_run(client, image: Path, args: tuple) -> tuple[float, float, int]:
    """(first frame, full run, number of streamed updates) of one Diagnose run."""
    from gradio_client import handle_file

    start = time.perf_counter()
    job = client.submit(handle_file(str(image)), *args, api_name="/diagnose")
    first, updates = None, 0
    for _ in job:
        updates += 1
        if first is None:
            first = time.perf_counter() - start
    full = time.perf_counter() - start
    outputs = job.outputs()
    if not outputs or "Done" not in str(outputs[-1][0]):
        raise RuntimeError(f"the run did not finish: {outputs[-1][-2] if outputs else 'no output'}")
    return first if first is not None else full, full, updates


def measure(weights: Path | None, runs: int, keep: bool) -> dict:
    """Build (or use) the models, launch the app, time the runs; returns the report."""
    import torch
    from gradio_client import Client

    from app.settings import DEFAULT_SAMPLER, DEFAULT_SAMPLES, DEFAULT_SEED
    from benchmarks.units import resnet18_unit
    from diffmic.config import DiffMICConfig

    torch.set_num_threads(UNIT_THREADS)
    tmp = Path(tempfile.mkdtemp(prefix="diffmic-bench-"))
    if weights is None:
        weights = tmp / "weights"
        realistic_model(weights)
    image = example_image(tmp / "assets")
    T = DiffMICConfig.load(weights / "fundus" / "config.json").timesteps
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    proc = start_app(weights, tmp / "assets", port, tmp / "app.log")
    try:
        started = time.perf_counter()
        wait_until_up(url, proc)
        startup = time.perf_counter() - started
        client = Client(url, verbose=False, download_files=False)
        settings = ("fundus", DEFAULT_SAMPLER, T, DEFAULT_SAMPLES, DEFAULT_SEED)
        units = [resnet18_unit()]
        warm = one_run(client, image, settings)
        timed = []
        for _ in range(runs):  # a unit after every run: this machine's speed drifts within minutes
            timed.append(one_run(client, image, settings))
            units.append(resnet18_unit())
    finally:
        stop_app(proc)
        if not keep:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    first = statistics.median(r[0] for r in timed)
    full = statistics.median(r[1] for r in timed)
    unit = statistics.median(units)
    return {
        "first_frame_s": round(first, 3),
        "full_run_s": round(full, 3),
        "unit_s": round(unit, 5),
        "unit_runs_s": [round(u, 5) for u in units],
        "full_run_units": round(full / unit, 1),
        "first_frame_runs_s": [round(r[0], 3) for r in timed],
        "full_run_runs_s": [round(r[1], 3) for r in timed],
        "updates_per_run": [r[2] for r in timed],
        "warmup_run_s": [round(warm[0], 3), round(warm[1], 3)],
        "startup_s": round(startup, 2),
        "settings": {
            "sampler": DEFAULT_SAMPLER,
            "steps": T,
            "samples": DEFAULT_SAMPLES,
            "seed": DEFAULT_SEED,
        },
        "targets": {"first_frame_s": FIRST_FRAME_TARGET_S, "full_run_units": FULL_RUN_TARGET_UNITS},
        "meets_targets": first <= FIRST_FRAME_TARGET_S and full / unit <= FULL_RUN_TARGET_UNITS,
        "cpu_count": os.cpu_count(),
    }


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--runs", type=int, default=5, help="timed runs after one warm-up (default 5)")
    parser.add_argument(
        "--weights", type=Path, help="a weights folder with fundus/ (default: a random model)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (app log, model)")
    args = parser.parse_args(argv)
    report = measure(args.weights, max(1, args.runs), args.keep)
    if args.json:
        print(json.dumps(report))
    else:
        s = report["settings"]
        what = f"{s['sampler']} {s['steps']} steps, {s['samples']} samples"
        print(f"Diagnose run, {what} (median of {args.runs}):")
        print(f"  first frame  {report['first_frame_s']:.3f} s   (target {FIRST_FRAME_TARGET_S:.1f} s)")
        print(
            f"  full run     {report['full_run_s']:.3f} s = {report['full_run_units']:.1f} units"
            f"   (target {FULL_RUN_TARGET_UNITS:.0f} units)"
        )
        print(f"  unit: resnet18 forward at 224 px, {UNIT_THREADS} threads: {report['unit_s'] * 1000:.1f} ms")
        print(f"  runs: first {report['first_frame_runs_s']}  full {report['full_run_runs_s']}")
        print(f"  streamed updates per run: {report['updates_per_run']}")
    return 0 if report["meets_targets"] else 1


if __name__ == "__main__":
    sys.exit(main())
