"""Memory per visitor: ``python app.py``'s resident size as new sessions each run one Diagnose.

A public Space meets a new session per browser tab and per ``gradio_client.Client``; Gradio keeps each
one's copy of the page's configuration and its state (Diagnose's maps and figure data) until
``DIFFMIC_MAX_SESSIONS`` newer ones push it out. This starts the app with that bound (``--max-sessions``),
runs ``--sessions`` new sessions one after another (one Diagnose each: DDIM, 20 steps, 1 chain, on a bundled
example) and samples the server's resident size every ``--every`` sessions, after waiting for the app's heap
trim (``app.heap``).

    python benchmarks/sessions.py --max-sessions 100 --sessions 300   # levels after 100
    python benchmarks/sessions.py --json

It prints MB per session while under the bound and the growth after it (target: none beyond noise, < 5 %).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from app_latency import free_port, start_app, stop_app, wait_until_up  # benchmarks/ is on sys.path
from load import environment
from soak import server_stats

ROOT = Path(__file__).resolve().parent.parent
TRIM_WAIT_S = 12.0  # a little over the app's 10 s trim interval


def run_sessions(
    url: str, image: Path, model: str, sessions: int, every: int, sample: Callable[[], float]
) -> list[tuple[int, float]]:
    """``sessions`` new clients, one Diagnose each; ``(sessions so far, MB)`` after every ``every``."""
    from gradio_client import Client, handle_file

    rows = [(0, sample())]
    for i in range(1, sessions + 1):
        client = Client(url, verbose=False, download_files=False)
        client.predict(handle_file(str(image)), model, "DDIM", 20, 1, i, api_name="/diagnose")
        if i % every == 0 or i == sessions:
            rows.append((i, sample()))
    return rows


def summary(rows: list[tuple[int, float]], bound: int) -> dict:
    """MB per session up to the bound, and the growth from the bound to the end."""
    under = [(n, mb) for n, mb in rows if n <= bound]
    warm = [(n, mb) for n, mb in under if n > 0]  # the first runs warm the app up
    first = warm[0] if len(warm) > 1 else under[0]
    per_session = (under[-1][1] - first[1]) / max(under[-1][0] - first[0], 1)
    over = [(n, mb) for n, mb in rows if n >= bound]
    growth = round(100 * (max(mb for _, mb in over) / over[0][1] - 1), 2) if len(over) > 1 else None
    return {"mb_per_session": round(per_session, 3), "growth_after_bound_pct": growth}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sessions", type=int, default=300)
    p.add_argument("--max-sessions", type=int, default=100, help="the app's DIFFMIC_MAX_SESSIONS")
    p.add_argument("--every", type=int, default=50, help="sample memory after this many sessions")
    p.add_argument("--weights", type=Path, default=ROOT / "weights")
    p.add_argument("--assets", type=Path, default=ROOT / "assets")
    p.add_argument("--model", default="fundus")
    p.add_argument("--trim-wait", type=float, default=TRIM_WAIT_S, help="seconds to wait before each sample")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    image = sorted((args.assets / args.model).glob("*.png"))[0]
    work = Path(tempfile.mkdtemp(prefix="diffmic-sessions-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    with environment(DIFFMIC_MAX_SESSIONS=str(args.max_sessions), GRADIO_TEMP_DIR=str(work / "gradio")):
        server = start_app(args.weights, args.assets, port, work / "app.log")
    try:
        wait_until_up(url, server, 600)

        def sample() -> float:
            time.sleep(args.trim_wait)
            return round(server_stats(server.pid)["rss_mb"], 1)

        rows = run_sessions(url, image, args.model, args.sessions, args.every, sample)
    finally:
        stop_app(server)
    report = {"sessions": args.sessions, "max_sessions": args.max_sessions, "rss_mb": rows}
    report |= summary(rows, args.max_sessions)
    if args.json:
        print(json.dumps(report))
    else:
        for n, mb in rows:
            print(f"{n:6d} sessions: {mb:8.1f} MB")
        print(
            f"{report['mb_per_session']} MB per session up to the bound of {args.max_sessions}; "
            f"after it: {report['growth_after_bound_pct']} %"
        )
    return report


if __name__ == "__main__":
    main()
