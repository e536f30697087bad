"""Load test: concurrent gradio_client users against the app on 127.0.0.1, bounded in count and time.

Starts ``python app.py`` bound to loopback on a free port, waits until it answers, then runs
``--clients`` threads that each make ``--requests`` calls of the ``/predict`` API (the same JSON as
the CLI). Prints failures, p50/p95 latency, and the server's resident memory after a warm-up and at
the end. Only ever talks to 127.0.0.1; stops by itself (``--timeout``) and always stops the server.

    python benchmarks/load.py [--clients 16] [--requests 13] [--json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
from app_latency import free_port, start_app, stop_app, wait_until_up  # benchmarks/ is on sys.path

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children, in MB."""
    proc = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]) / 2**20


def run_load(
    url: str,
    image: Path,
    model: str,
    clients: int,
    requests: int,
    timeout: float,
    warmup_done: threading.Event,
    warmup_count: int,
) -> tuple[list[float], list[str]]:
    """Run the clients; returns latencies and failure messages."""
    from gradio_client import Client, handle_file

    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + timeout

    def user(k: int) -> None:
        client = Client(url, verbose=False)
        for i in range(requests):
            if time.monotonic() > stop_at:
                with lock:
                    failures.append("time limit reached")
                return
            start = time.perf_counter()
            try:
                out = client.predict(
                    handle_file(str(image)), model, "DDPM", 1000, 4, 1000 * k + i, api_name="/predict"
                )
                result = out if isinstance(out, dict) else json.loads(out)
                assert "label" in result and "probabilities" in result, result
                with lock:
                    latencies.append(time.perf_counter() - start)
                    if len(latencies) >= warmup_count:
                        warmup_done.set()
            except Exception as err:  # counted, reported
                with lock:
                    failures.append(f"{type(err).__name__}: {err}"[:200])

    threads = [threading.Thread(target=user, args=(k,), daemon=True) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=max(1.0, stop_at - time.monotonic() + 30))
    return latencies, failures


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--requests", type=int, default=13, help="predictions per client")
    p.add_argument("--model", default="fundus")
    p.add_argument("--image", type=Path, default=ROOT / "assets" / "fundus" / "2_moderate_0.png")
    p.add_argument("--timeout", type=float, default=900.0, help="stop after this many seconds")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    port = free_port()
    server = start_app(ROOT / "weights", ROOT / "assets", port, Path(tempfile.mkdtemp()) / "app.log")
    wait_until_up(f"http://{HOST}:{port}/", server)
    try:
        warm = threading.Event()
        rss_start = rss_mb(server.pid)
        samples: dict[str, float] = {}

        def watch() -> None:
            warm.wait()
            samples["rss_before_mb"] = rss_mb(server.pid)

        threading.Thread(target=watch, daemon=True).start()
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
        )
        wall = time.perf_counter() - start
        rss_after = rss_mb(server.pid)
    finally:
        stop_app(server)
    lat = np.array(latencies) if latencies else np.array([np.nan])
    result = {
        "requests": len(latencies) + len(failures),
        "failures": len(failures),
        "p50_s": round(float(np.percentile(lat, 50)), 3),
        "p95_s": round(float(np.percentile(lat, 95)), 3),
        "rss_start_mb": round(rss_start, 1),
        "rss_before_mb": round(samples.get("rss_before_mb", rss_start), 1),
        "rss_after_mb": round(rss_after, 1),
        "wall_s": round(wall, 1),
        "clients": args.clients,
    }
    if args.json:
        print(json.dumps(result))
        return
    growth = 100 * (result["rss_after_mb"] / result["rss_before_mb"] - 1)
    print(
        f"{result['requests']} requests from {args.clients} clients in {wall:.1f} s; failures {len(failures)}"
    )
    print(f"latency p50 {result['p50_s']:.2f} s, p95 {result['p95_s']:.2f} s")
    print(
        f"server RSS: start {rss_start:.0f} MB, after warm-up {result['rss_before_mb']:.0f} MB, "
        f"end {rss_after:.0f} MB ({growth:+.1f} %; target < 10 %)"
    )
    for f in sorted(set(failures))[:5]:
        print("  failure:", f)


if __name__ == "__main__":
    main()
