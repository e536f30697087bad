"""Test-wide settings: offline Hub, deterministic torch, generated data cached in a temporary folder."""

import os
import tempfile

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ.setdefault("DIFFMIC_CACHE", tempfile.mkdtemp(prefix="diffmic-test-cache-"))

import pytest  # noqa: E402
import torch  # noqa: E402

# One intra-op thread, as the app serves: tiny ops on a busy 2-core machine crawl with two (a tiny
# training run took 25 s instead of 1.4 s), and one thread gives the same numbers on every machine.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
