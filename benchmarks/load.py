"""Load test: concurrent ``/predict`` users against the app on 127.0.0.1, with and without batching.

For each ``--batching`` mode (``both``: off, then on, in the same run) it starts ``python app.py`` bound to
loopback on a free port (``DIFFMIC_BATCHING`` set accordingly), waits until it answers, then runs
``--clients`` threads that each make ``--requests`` calls of the ``/predict`` API (the same JSON as the CLI;
DDPM, all T steps, 4 chains, a seed per call): by default over Gradio's HTTP API with httpx (upload, call,
read the events; a session per client, as gradio_client and browsers have), as remote users would, since the
clients share this machine's cores with the server; ``--client gradio`` uses gradio_client, which costs those
cores about as much CPU as the server spends (measured: 22 s of client CPU against 31 s of the server's for
208 requests; httpx: 4.6 s). It reports requests per second, failures, p50/p95 latency and the server's
resident memory after a warm-up and at the end, and the benchmarks' unit (``benchmarks/units.py``: one
resnet18 forward at 224 px, 2 threads, measured here while no server runs: before, between and after the
modes, the median). Only ever talks to 127.0.0.1; stops by itself (``--timeout``) and always stops the server.

    python benchmarks/load.py                      # 16 clients x 13 calls, batching off then on
    python benchmarks/load.py --json               # {"unit_s", "modes": {"off": {...}, "on": {...}}, ...}
    python benchmarks/load.py --batching on --clients 2 --requests 2 --timeout 120   # a quick check
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import psutil
from app_latency import free_port, start_app, stop_app, wait_until_up  # benchmarks/ is on sys.path

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
UNIT_THREADS = 2


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children, in MB."""
    proc = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]) / 2**20


def http_predict(
    http, url: str, image: Path, args: tuple, timeout: float, session_hash: str | None = None
) -> dict:
    """One ``/predict`` call over Gradio's HTTP API, as a browser-less client would make it: upload the
    image, queue the call, read its server-sent events until the result. Raises on an error event.

    ``session_hash`` names the caller's session, as gradio_client and the browser name theirs (one per
    client); without it Gradio makes a new session for the call, and builds its state for every component
    of the app (measured: 7 % of the server's CPU under load)."""
    with open(image, "rb") as f:
        files = {"files": (image.name, f, "image/png")}
        up = http.post(f"{url}gradio_api/upload", files=files, timeout=timeout)
    up.raise_for_status()
    data = [{"path": up.json()[0], "meta": {"_type": "gradio.FileData"}}, *args]
    body = {"data": data} if session_hash is None else {"data": data, "session_hash": session_hash}
    call = http.post(f"{url}gradio_api/call/predict", json=body, timeout=timeout)
    call.raise_for_status()
    event = None
    events = f"{url}gradio_api/call/predict/{call.json()['event_id']}"
    with http.stream("GET", events, timeout=timeout) as sse:
        for line in sse.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and event in ("complete", "error"):
                if event == "error":
                    raise RuntimeError(f"error event: {line[5:].strip()[:160]}")
                return json.loads(line[5:])[0]
    raise RuntimeError(f"the stream ended without a result (last event {event})")


def run_load(
    url: str,
    image: Path,
    model: str,
    clients: int,
    requests: int,
    timeout: float,
    warmup_done: threading.Event,
    warmup_count: int,
    chain: tuple[str, int, int] = ("DDPM", 1000, 4),
    client: str = "http",
) -> tuple[list[float], list[str]]:
    """Run the clients; returns latencies and failure messages. ``chain`` is (sampler, steps, chains);
    ``client`` is ``http`` (Gradio's HTTP API through httpx: little CPU, as remote users cost the server
    nothing but their requests) or ``gradio`` (gradio_client, which costs the shared cores more)."""
    import httpx
    from gradio_client import Client, handle_file

    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + timeout
    sampler, steps, samples = chain

    def connect():
        return httpx.Client() if client == "http" else Client(url, verbose=False)

    def call(session, seed: int, session_hash: str):
        args = (model, sampler, steps, samples, seed)
        if client == "http":
            remaining = max(1.0, stop_at - time.monotonic())
            return http_predict(session, url, image, args, remaining, session_hash)
        return session.predict(handle_file(str(image)), *args, api_name="/predict")

    def user(k: int) -> None:
        try:
            session = connect()
        except Exception as err:  # counted, reported
            with lock:
                failures.extend([f"connect: {type(err).__name__}: {err}"[:200]] * requests)
            return
        for i in range(requests):
            if time.monotonic() > stop_at:
                with lock:
                    failures.append("time limit reached")
                return
            start = time.perf_counter()
            try:
                out = call(session, 1000 * k + i, f"load-client-{k}")
                result = out if isinstance(out, dict) else json.loads(out)
                assert "label" in result and "probabilities" in result, result
                with lock:
                    latencies.append(time.perf_counter() - start)
                    if len(latencies) >= warmup_count:
                        warmup_done.set()
            except Exception as err:  # counted, reported
                with lock:
                    failures.append(f"{type(err).__name__}: {err}"[:200])

    run_clients(user, clients, stop_at + 30)
    return latencies, failures


def run_clients(user, clients: int, join_by: float) -> None:
    """Run ``user(k)`` for k < clients on threads of their own; wait for them until monotonic ``join_by``."""
    threads = [threading.Thread(target=user, args=(k,), daemon=True) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=max(1.0, join_by - time.monotonic()))


@contextmanager
def environment(**values: str) -> Iterator[None]:
    """Set environment variables for the app ``start_app`` starts (which copies the environment)."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def one_mode(args: argparse.Namespace, batching: bool) -> dict:
    """Start the app with batching on or off, run the clients, stop it; the figures of that run."""
    port = free_port()
    log = Path(tempfile.mkdtemp(prefix="diffmic-load-")) / "app.log"
    with environment(DIFFMIC_BATCHING="1" if batching else "0"):
        server = start_app(args.weights, args.assets, port, log)
    try:
        wait_until_up(f"http://{HOST}:{port}/", server, args.startup_timeout)
        warm = threading.Event()
        rss_start = rss_mb(server.pid)
        samples: dict[str, float] = {}

        def watch() -> None:
            warm.wait()
            samples["rss_before_mb"] = rss_mb(server.pid)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        start = time.perf_counter()
        latencies, failures = run_load(
            f"http://{HOST}:{port}/",
            args.image,
            args.model,
            args.clients,
            args.requests,
            args.timeout,
            warm,
            args.clients,
            (args.sampler, args.steps, args.samples),
            args.client,
        )
        wall = time.perf_counter() - start
        if warm.is_set():  # its reading is taken before the app stops (a stopping app reads 0 MB)
            watcher.join()
        rss_after = rss_mb(server.pid)
    finally:
        stop_app(server)
    lat = np.array(latencies) if latencies else np.array([np.nan])
    rss_before = samples.get("rss_before_mb", rss_start)
    return {
        "batching": batching,
        "requests": len(latencies) + len(failures),
        "failures": len(failures),
        "requests_per_s": round(len(latencies) / wall, 3) if wall > 0 else 0.0,
        "p50_s": round(float(np.percentile(lat, 50)), 3),
        "p95_s": round(float(np.percentile(lat, 95)), 3),
        "rss_start_mb": round(rss_start, 1),
        "rss_before_mb": round(rss_before, 1),
        "rss_after_mb": round(rss_after, 1),
        "rss_growth_pct": round(100 * (rss_after / rss_before - 1), 2),
        "wall_s": round(wall, 1),
        "failure_examples": sorted(set(failures))[:5],
    }


def unit_s() -> float:
    """One benchmark unit, measured now (see ``benchmarks/units.py``)."""
    import torch

    from benchmarks.units import resnet18_unit

    torch.set_num_threads(UNIT_THREADS)
    return resnet18_unit()


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--requests", type=int, default=13, help="predictions per client")
    p.add_argument("--batching", choices=("on", "off", "both"), default="both")
    p.add_argument("--model", default="fundus")
    p.add_argument("--weights", type=Path, default=ROOT / "weights", help="the app's models")
    p.add_argument("--assets", type=Path, default=ROOT / "assets", help="the app's example images")
    p.add_argument("--image", type=Path, default=ROOT / "assets" / "fundus" / "2_moderate_0.png")
    p.add_argument("--sampler", default="DDPM")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--samples", type=int, default=4, help="chains per request")
    p.add_argument("--timeout", type=float, default=900.0, help="stop each mode after this many seconds")
    p.add_argument("--startup-timeout", type=float, default=600.0, help="seconds to wait for the app")
    p.add_argument(
        "--client",
        choices=("http", "gradio"),
        default="http",
        help="http: Gradio's HTTP API (light, as remote users are); gradio: gradio_client (heavier)",
    )
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    modes = {"on": [True], "off": [False], "both": [False, True]}[args.batching]
    units = [unit_s()]
    results = {}
    for batching in modes:
        results["on" if batching else "off"] = one_mode(args, batching)
        units.append(unit_s())
    report: dict = {
        "unit_s": round(statistics.median(units), 5),
        "unit_runs_s": [round(u, 5) for u in units],
        "clients": args.clients,
        "client": args.client,
        "requests_per_client": args.requests,
        "chain": {"sampler": args.sampler, "steps": args.steps, "samples": args.samples},
        "cpu_count": os.cpu_count(),
        "modes": results,
    }
    for name, result in results.items():  # the headline figures of the mode(s) run, at the top level
        report[f"requests_per_s_{name}"] = result["requests_per_s"]
        report[f"p50_s_{name}"], report[f"p95_s_{name}"] = result["p50_s"], result["p95_s"]
    if len(results) == 1:
        (only,) = results.values()
        report.update(requests_per_s=only["requests_per_s"], p50_s=only["p50_s"], p95_s=only["p95_s"])
    if len(results) == 2 and results["off"]["requests_per_s"] > 0 and results["on"]["p95_s"] > 0:
        report["speedup"] = round(results["on"]["requests_per_s"] / results["off"]["requests_per_s"], 2)
        report["p95_ratio"] = round(results["off"]["p95_s"] / results["on"]["p95_s"], 2)
    if args.json:
        print(json.dumps(report))
        return report
    print(f"unit (resnet18 forward at 224 px, {UNIT_THREADS} threads): {report['unit_s'] * 1000:.1f} ms")
    for name, r in results.items():
        print(
            f"batching {name}: {r['requests']} requests from {args.clients} clients in {r['wall_s']:.1f} s, "
            f"{r['requests_per_s']:.2f} requests/s; failures {r['failures']}; "
            f"latency p50 {r['p50_s']:.2f} s, p95 {r['p95_s']:.2f} s; server RSS after warm-up "
            f"{r['rss_before_mb']:.0f} MB, end {r['rss_after_mb']:.0f} MB ({r['rss_growth_pct']:+.1f} %)"
        )
        for f in r["failure_examples"]:
            print("  failure:", f)
    if "speedup" in report:
        print(f"on / off: {report['speedup']:.2f} x requests/s, p95 {report['p95_ratio']:.2f} x lower")
    return report


if __name__ == "__main__":
    main()
