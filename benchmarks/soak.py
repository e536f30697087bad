"""Soak test: mixed traffic against ``python app.py`` for a given time, then what it left behind.

Starts the app on 127.0.0.1 (a free port, offline, its temporary files in a private folder, run folders
pruned after ``--outputs-max-age`` seconds) and runs ``--clients`` gradio_client users until ``--duration``
seconds have passed. Each picks, at random (seeded), one of:

- ``predict``: ``/predict`` on an example image, a random model, DDIM or DDPM, 1-8 chains;
- ``diagnose``: a streamed ``/diagnose`` run to its end;
- ``stop``: a streamed ``/diagnose`` run cancelled after a few updates (the API's Stop: the caller leaves;
  a cancel the server does not confirm in time is counted as ``slow_cancel``, not as a failure);
- ``evaluate``: ``/evaluate`` on a small zipped dataset;
- ``bad``: ``/predict`` on a bad file (text, empty, truncated PNG, a zip), which must fail with its message;
- ``switch``: a model switch, i.e. ``/predict`` on a Hub repo id that cannot be reached (the app falls
  back to a bundled model and says so).

Client k starts with the k-th kind, so a short run with six clients still does each. Unexpected
failures are any other exception, a wrong answer, or a bad file accepted. Every ``--sample-every`` seconds
the server's resident memory, open file descriptors and threads are sampled; the warm-up
(``--warmup``, default a fifth of the run) is not counted. At the end (after one more Diagnose run, which
prunes), it prints:

- unexpected failures (target 0), requests per kind;
- resident memory growth after the warm-up (target < 5 %): the highest sample in the first ``--window``
  seconds after the warm-up against the highest in the last ``--window`` seconds (the app hands freed
  memory back every 10 s, ``app.heap``, so its resident size is a saw whose peaks are what it needs);
  file descriptors and threads at the end of the warm-up and at the end (target: flat);
- temporary files: run folders older than the pruning bound, and entries that are neither run folders
  nor Gradio's cache and appeared after the warm-up (target 0 each); Gradio's upload cache for information
  (Gradio removes its files after an hour).

    python benchmarks/soak.py                        # 20 minutes on the bundled models
    python benchmarks/soak.py --duration 60 --json   # a minute, one JSON object

Exit status 0 when every target is met.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
import zipfile
from collections import Counter
from pathlib import Path

import psutil
from app_latency import free_port, start_app, stop_app, wait_until_up  # benchmarks/ is on sys.path
from load import environment, run_clients

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
KINDS = ("predict", "diagnose", "stop", "evaluate", "bad", "switch")
WEIGHTS = {"predict": 5, "diagnose": 2, "stop": 2, "evaluate": 1, "bad": 2, "switch": 1}
BAD_MESSAGES = ("not a recognised image", "the file is empty", "corrupt or truncated")
RSS_TARGET_PCT = 5.0
FD_SLACK = 8  # descriptors that may come and go with open connections
RUN_FOLDERS = "diffmic-app"
MISSING_HUB_REPO = "nobody-here/diffmic-none"
UPDATE_TIMEOUT_S = 120.0  # a streamed run that sends nothing for this long is a failure, not a wait forever


class Unexpected(Exception):
    """A request that did not end as it should."""


class SlowCancel(Exception):
    """Stop was sent but the server did not confirm it in time (counted apart: a busy server)."""


def server_stats(pid: int) -> dict:
    """Resident memory (MB, with children), open file descriptors and threads of the server."""
    proc = psutil.Process(pid)
    procs = [proc, *proc.children(recursive=True)]
    return {
        "rss_mb": sum(p.memory_info().rss for p in procs) / 2**20,
        "fds": sum(p.num_fds() for p in procs),
        "threads": sum(p.num_threads() for p in procs),
    }


def temp_entries(tmp: Path) -> set[str]:
    """Entries of the app's temporary folder that are neither run folders nor Gradio's cache."""
    if not tmp.is_dir():
        return set()
    return {p.name for p in tmp.iterdir() if p.name not in (RUN_FOLDERS, "gradio")}


def old_run_folders(tmp: Path, max_age_s: float, slack_s: float = 30.0) -> list[str]:
    """Run folders older than the pruning bound (they should have been removed)."""
    root = tmp / RUN_FOLDERS
    if not root.is_dir():
        return []
    cutoff = time.time() - max_age_s - slack_s
    return sorted(p.name for p in root.iterdir() if p.stat().st_mtime < cutoff)


def cache_files(folder: Path) -> tuple[int, float]:
    """(files, MB) under a folder."""
    files = [p for p in folder.rglob("*") if p.is_file()] if folder.is_dir() else []
    return len(files), sum(p.stat().st_size for p in files) / 2**20


def make_inputs(folder: Path, assets: Path, task: str) -> dict[str, list[Path]]:
    """Example images, bad files and a small zipped dataset of ``task``."""
    from diffmic.data.fixtures import write_image_folder_fixture

    folder.mkdir(parents=True, exist_ok=True)
    images = sorted((assets / task).glob("*.png"))[:6]
    if not images:
        raise SystemExit(f"no example images in {assets / task}")
    text, empty, truncated = folder / "notes.png", folder / "empty.png", folder / "truncated.png"
    text.write_text("this is not an image")
    empty.write_bytes(b"")
    truncated.write_bytes(images[0].read_bytes()[:200])
    data = write_image_folder_fixture(folder / "dataset", task, n_per_class=1, size=64, seed=1)
    dataset = folder / "dataset.zip"
    with zipfile.ZipFile(dataset, "w") as zf:
        for p in sorted(data.rglob("*")):
            if p.is_file():
                zf.write(p, Path("mydata") / p.relative_to(data))
    not_image = folder / "dataset-as-image.png"
    shutil.copy(dataset, not_image)
    return {"images": images, "bad": [text, empty, truncated, not_image], "zips": [dataset], "task": task}


def wait_for_updates(job, wanted: int, timeout_s: float) -> None:
    """Wait until ``job`` has streamed ``wanted`` updates or ended; ``Unexpected`` after ``timeout_s``
    without either (iterating a gradio_client job whose stream broke would wait forever)."""
    deadline = time.monotonic() + timeout_s
    while len(job.outputs()) < wanted and not job.done():
        if time.monotonic() > deadline:
            raise Unexpected(f"diagnose: {len(job.outputs())} of {wanted} updates within {timeout_s:.0f} s")
        time.sleep(0.01)


def diagnose(client, image: Path, model: str, T: int, rng: random.Random, stop: bool) -> None:
    """A streamed run (DDIM 20 steps or DDPM all ``T``): to its end (which must say Done), or cancelled
    after a few updates."""
    from gradio_client import handle_file

    (sampler, steps), samples = rng.choice([("DDIM", 20), ("DDPM", T)]), rng.randint(1, 8)
    args = (handle_file(str(image)), model, sampler, steps, samples, rng.randrange(1000))
    job = client.submit(*args, api_name="/diagnose")
    if stop:
        wait_for_updates(job, rng.randint(1, 3), UPDATE_TIMEOUT_S)
        try:
            job.cancel()
        except Exception as err:  # the cancel request itself timed out: a slow server, not a failure
            if "timeout" not in type(err).__name__.lower() and "timed out" not in str(err):
                raise
            raise SlowCancel(str(err)) from err
        return
    counter = job.result(timeout=600)[0]  # the counter is the first output
    if "Done" not in str(counter):
        raise Unexpected(f"diagnose did not finish: the counter says {str(counter)[:120]!r}")


def one_request(client, kind: str, inputs: dict, models: list[str], rng: random.Random) -> None:
    """Send one request of ``kind``; raise ``Unexpected`` unless it ends as it should."""
    from gradio_client import handle_file

    model = rng.choice(models)
    image = rng.choice(inputs["images"])
    if kind in ("predict", "switch"):
        sampler, steps = rng.choice([("ddim", 20), ("ddpm", 0)])
        name = MISSING_HUB_REPO if kind == "switch" else model
        args = (handle_file(str(image)), name, sampler, steps, rng.randint(1, 8), rng.randrange(1000))
        answer = client.predict(*args, api_name="/predict")
        if not isinstance(answer, dict) or "label" not in answer or "probabilities" not in answer:
            raise Unexpected(f"{kind}: not an answer: {str(answer)[:120]}")
    elif kind in ("diagnose", "stop"):
        diagnose(client, image, model, inputs["T"][model], rng, stop=kind == "stop")
    elif kind == "evaluate":
        metrics, *_, error = client.predict(
            handle_file(str(inputs["zips"][0])), inputs["task"], "DDIM", 5, 1, api_name="/evaluate"
        )
        message = error.get("value") if isinstance(error, dict) else error  # the error box (hidden: empty)
        if not metrics or (message and str(message).strip()):
            raise Unexpected(f"evaluate: {str(message)[:160]}")
    elif kind == "bad":
        bad = rng.choice(inputs["bad"])
        try:
            client.predict(handle_file(str(bad)), model, "ddim", 5, 1, 0, api_name="/predict")
        except Exception as err:  # the expected refusal, with its message
            if not any(m in str(err) for m in BAD_MESSAGES):
                raise Unexpected(f"bad file {bad.name}: unexpected message {str(err)[:160]}") from err
            return
        raise Unexpected(f"bad file {bad.name} was accepted")


def traffic(
    url: str, inputs: dict, models: list[str], clients: int, until: float, seed: int
) -> tuple[Counter, list[str]]:
    """Run the clients until ``until`` (monotonic); requests per kind and the unexpected failures."""
    from gradio_client import Client

    done: Counter = Counter()
    failures: list[str] = []
    lock = threading.Lock()

    def user(k: int) -> None:
        rng = random.Random(seed * 1000 + k)
        kinds = itertools.chain(
            KINDS[k % len(KINDS) :] + KINDS[: k % len(KINDS)],  # every kind early on, whatever the duration
            iter(lambda: rng.choices(KINDS, weights=[WEIGHTS[n] for n in KINDS])[0], None),
        )
        try:
            client = Client(url, verbose=False, download_files=False)
        except Exception as err:  # noqa: BLE001 - counted
            with lock:
                failures.append(f"connect: {type(err).__name__}: {err}"[:240])
            return
        for i, kind in enumerate(kinds):
            if i and time.monotonic() > until:  # the first request is always sent
                return
            try:
                one_request(client, kind, inputs, models, rng)
                with lock:
                    done[kind] += 1
            except SlowCancel:
                with lock:
                    done[kind] += 1
                    done["slow_cancel"] += 1
            except Exception as err:  # noqa: BLE001 - counted, reported
                with lock:
                    done[kind] += 1
                    failures.append(f"{kind}: {type(err).__name__}: {err}"[:240])

    run_clients(user, clients, until + 900)
    return done, failures


def memory_peaks(
    timeline: list[tuple[float, float]], warmup: float, end: float, window: float
) -> tuple[float, float]:
    """The highest resident size in the first ``window`` seconds after ``warmup`` and in the last ``window``
    seconds up to ``end`` (windows shortened to half the measured time when that is shorter)."""
    window = min(window, max(end - warmup, 0.0) / 2)
    first = [mb for t, mb in timeline if warmup <= t <= warmup + window]
    last = [mb for t, mb in timeline if end - window <= t]
    return max(first or [timeline[0][1]]), max(last or [timeline[-1][1]])


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=1200.0, help="seconds of traffic (default 20 min)")
    p.add_argument("--warmup", type=float, help="seconds not counted for memory (default: a fifth)")
    p.add_argument("--clients", type=int, default=6)
    p.add_argument("--weights", type=Path, default=ROOT / "weights")
    p.add_argument("--assets", type=Path, default=ROOT / "assets")
    p.add_argument("--task", default="fundus", help="the examples' and the zipped dataset's task")
    p.add_argument("--outputs-max-age", type=float, default=120.0, help="the app's run-folder pruning bound")
    p.add_argument("--sample-every", type=float, default=10.0)
    p.add_argument("--window", type=float, default=60.0, help="seconds whose memory peak is compared")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--startup-timeout", type=float, default=600.0)
    p.add_argument("--keep", action="store_true", help="keep the working folder (app log, inputs, temp)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    warmup = args.duration / 5 if args.warmup is None else args.warmup
    work = Path(tempfile.mkdtemp(prefix="diffmic-soak-"))
    tmp = work / "tmp"
    tmp.mkdir()
    inputs = make_inputs(work / "inputs", args.assets, args.task)
    models = sorted(p.parent.name for p in args.weights.glob("*/model.safetensors"))
    if args.task not in models:
        raise SystemExit(f"no {args.task} model in {args.weights}")
    inputs["T"] = {m: json.loads((args.weights / m / "config.json").read_text())["timesteps"] for m in models}
    port = free_port()
    url = f"http://{HOST}:{port}/"
    with environment(
        TMPDIR=str(tmp),
        GRADIO_TEMP_DIR=str(tmp / "gradio"),
        DIFFMIC_OUTPUTS_MAX_AGE_S=str(args.outputs_max_age),
        MPLCONFIGDIR=str(work / "matplotlib"),
    ):
        server = start_app(args.weights, args.assets, port, work / "app.log")
    samples: list[tuple[float, dict]] = []
    try:
        wait_until_up(url, server, args.startup_timeout)
        start = time.monotonic()
        until = start + args.duration
        stop_sampling = threading.Event()
        marks: dict = {}

        def sample() -> None:
            while True:
                samples.append((time.monotonic() - start, server_stats(server.pid)))
                if "warm" not in marks and time.monotonic() - start >= warmup:
                    marks["warm"] = samples[-1][1]
                    marks["entries"] = temp_entries(tmp)
                if stop_sampling.wait(args.sample_every):
                    return

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        done, failures = traffic(url, inputs, models, args.clients, until, args.seed)
        stop_sampling.set()
        sampler.join()
        from gradio_client import Client

        try:  # one more run after the traffic: it prunes old run folders
            client = Client(url, verbose=False, download_files=False)
            diagnose(
                client, inputs["images"][0], args.task, inputs["T"][args.task], random.Random(0), stop=False
            )
        except Exception as err:  # noqa: BLE001 - counted
            failures.append(f"final diagnose: {type(err).__name__}: {err}"[:240])
        time.sleep(2.0)  # let closed connections go
        end = server_stats(server.pid)
        warm = marks.get("warm", samples[0][1] if samples else end)
        stray = sorted(temp_entries(tmp) - marks.get("entries", temp_entries(tmp)))
        old = old_run_folders(tmp, args.outputs_max_age)
        runs = len(list((tmp / RUN_FOLDERS).iterdir())) if (tmp / RUN_FOLDERS).is_dir() else 0
        gradio_files, gradio_mb = cache_files(tmp / "gradio")
        alive = server.poll() is None
    finally:
        stop_app(server)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    rss = [s["rss_mb"] for _, s in samples] or [end["rss_mb"]]
    timeline = [(t, s["rss_mb"]) for t, s in samples] + [(args.duration, end["rss_mb"])]
    first_peak, last_peak = memory_peaks(timeline, warmup, args.duration, args.window)
    growth = 100 * (last_peak / first_peak - 1)
    report = {
        "duration_s": args.duration,
        "warmup_s": warmup,
        "clients": args.clients,
        "models": models,
        "requests": dict(done),
        "requests_total": sum(done.values()),
        "unexpected_failures": len(failures),
        "failure_examples": sorted(set(failures))[:10],
        "server_alive": alive,
        "rss_window_s": args.window,
        "rss_warm_peak_mb": round(first_peak, 1),
        "rss_end_peak_mb": round(last_peak, 1),
        "rss_end_mb": round(end["rss_mb"], 1),
        "rss_max_mb": round(max(rss), 1),
        "rss_median_mb": round(statistics.median(rss), 1),
        "rss_growth_pct": round(growth, 2),
        "fds_warm": warm["fds"],
        "fds_end": end["fds"],
        "threads_warm": warm["threads"],
        "threads_end": end["threads"],
        "run_folders": runs,
        "run_folders_beyond_bound": old,
        "outputs_max_age_s": args.outputs_max_age,
        "stray_temp_entries": stray,
        "gradio_cache_files": gradio_files,
        "gradio_cache_mb": round(gradio_mb, 1),
        "samples": [(round(t, 1), round(s["rss_mb"], 1), s["fds"], s["threads"]) for t, s in samples],
        "work_dir": str(work) if args.keep else None,
    }
    report["meets_targets"] = bool(
        alive
        and not failures
        and growth < RSS_TARGET_PCT
        and end["fds"] <= warm["fds"] + FD_SLACK
        and not old
        and not stray
    )
    if args.json:
        print(json.dumps(report))
    else:
        print_report(report)
    return report


def print_report(r: dict) -> None:
    """The report in words."""
    beyond, stray = r["run_folders_beyond_bound"], r["stray_temp_entries"]
    print(
        f"{r['requests_total']} requests in {r['duration_s']:.0f} s, {r['clients']} clients: {r['requests']}"
    )
    print(f"unexpected failures: {r['unexpected_failures']} (target 0); server alive: {r['server_alive']}")
    for f in r["failure_examples"]:
        print("  ", f)
    print(
        f"resident memory, highest in {r['rss_window_s']:.0f} s: {r['rss_warm_peak_mb']:.0f} MB after "
        f"the {r['warmup_s']:.0f} s warm-up, {r['rss_end_peak_mb']:.0f} MB at the end "
        f"({r['rss_growth_pct']:+.1f} %; target < {RSS_TARGET_PCT:.0f} %); max {r['rss_max_mb']:.0f} MB, "
        f"{r['rss_end_mb']:.0f} MB after the last request"
    )
    print(
        f"file descriptors: {r['fds_warm']} -> {r['fds_end']}; "
        f"threads {r['threads_warm']} -> {r['threads_end']}"
    )
    print(
        f"temporary files: {r['run_folders']} run folders, {len(beyond)} older than the "
        f"{r['outputs_max_age_s']:.0f} s pruning bound; {len(stray)} stray entries {stray[:5]}; "
        f"Gradio's cache {r['gradio_cache_files']} files, {r['gradio_cache_mb']} MB"
    )
    print("meets the targets" if r["meets_targets"] else "DOES NOT meet the targets")


if __name__ == "__main__":
    sys.exit(0 if main()["meets_targets"] else 1)
