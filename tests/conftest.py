"""Test-wide settings: offline Hub, deterministic torch, generated data cached in a temporary folder."""

import os
import tempfile

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ.setdefault("DIFFMIC_CACHE", tempfile.mkdtemp(prefix="diffmic-test-cache-"))

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
