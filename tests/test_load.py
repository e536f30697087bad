"""``benchmarks/load.py`` for a few requests against ``python app.py`` on a tiny model: the light HTTP client
and gradio_client both get every answer, and the same seed gives the same answer through either."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_app_support import make_app_dirs

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.mark.slow
def test_both_clients_get_the_same_answers(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import httpx
    import load
    from app_latency import free_port, start_app, stop_app, wait_until_up
    from gradio_client import Client, handle_file

    settings = make_app_dirs(tmp_path, n_examples=2)
    image = sorted((settings.assets_dir / "fundus").glob("*.png"))[0]
    port = free_port()
    server = start_app(settings.weights_dir, settings.assets_dir, port, tmp_path / "app.log")
    try:
        url = f"http://{load.HOST}:{port}/"
        wait_until_up(url, server, 300)
        args = ("fundus", "DDIM", 5, 2, 7)
        with httpx.Client() as http:
            light = load.http_predict(http, url, image, args, 60)
        heavy = Client(url, verbose=False).predict(handle_file(str(image)), *args, api_name="/predict")
    finally:
        stop_app(server)
    assert light["sampler"] == "ddim" and light["steps"] == 5
    light.pop("seconds"), heavy.pop("seconds")
    assert light == heavy


@pytest.mark.slow
@pytest.mark.parametrize("client", ["http", "gradio"])
def test_a_short_load_run_answers_every_request(tmp_path, monkeypatch, client):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import load

    settings = make_app_dirs(tmp_path, n_examples=2)
    image = sorted((settings.assets_dir / "fundus").glob("*.png"))[0]
    argv = ["--batching", "on", "--clients", "2", "--requests", "2", "--steps", "10", "--client", client]
    argv += ["--weights", str(settings.weights_dir), "--assets", str(settings.assets_dir)]
    report = load.main([*argv, "--image", str(image), "--timeout", "120", "--json"])
    result = report["modes"]["on"]
    assert result["requests"] == 4 and result["failures"] == 0, result["failure_examples"]
    assert report["client"] == client and report["requests_per_s"] > 0 and report["unit_s"] > 0
