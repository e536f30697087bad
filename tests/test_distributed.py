"""The same training code runs unchanged under torchrun: two CPU processes (gloo) stay in lock-step."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = """
import sys, torch
sys.path.insert(0, {root!r})
from tests.test_train import FAST_VAL, splits
from tests.helpers import tiny_config
from diffmic.train import Trainer, TrainConfig
tc = TrainConfig(out_dir={out!r}, global_epochs=1, local_epochs=1, diffusion_epochs=1, batch_size=8,
                 val_options=FAST_VAL, cache_views=1)
t = Trainer(tiny_config(3), tc, splits())
t.run()
w = t.model.denoiser.out.weight.detach().clone()
gathered = [torch.zeros_like(w) for _ in range(t.dist.world)]
torch.distributed.all_gather(gathered, w)
same = all(torch.equal(gathered[0], x) for x in gathered)
with open({out!r} + f".rank{{t.dist.rank}}", "w") as f:
    f.write(f"RANK {{t.dist.rank}} WORLD {{t.dist.world}} SAME {{same}}")
torch.distributed.barrier()
torch.distributed.destroy_process_group()
"""


@pytest.mark.slow
def test_two_process_training_keeps_ranks_identical(tmp_path):
    script = tmp_path / "ddp_train.py"
    script.write_text(SCRIPT.format(root=str(ROOT), out=str(tmp_path / "run")))
    torchrun = shutil.which("torchrun") or sys.executable
    args = [torchrun] if torchrun != sys.executable else [sys.executable, "-m", "torch.distributed.run"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(
        [*args, "--standalone", "--nproc_per_node", "2", str(script)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert res.returncode == 0, res.stderr[:3000] + "\n...\n" + res.stderr[-3000:]
    lines = [(tmp_path / f"run.rank{r}").read_text() for r in (0, 1)]
    assert lines == ["RANK 0 WORLD 2 SAME True", "RANK 1 WORLD 2 SAME True"]
    assert (tmp_path / "run" / "model.safetensors").is_file()  # written by rank 0 only


def test_each_rank_takes_its_own_gpu(monkeypatch):
    from diffmic.distributed import Distributed

    monkeypatch.setenv("WORLD_SIZE", "1")
    single = Distributed()
    assert single.device(torch.device("cuda")) == torch.device("cuda")  # one process: as asked
    ranked = Distributed()
    ranked.world, ranked.local_rank = 4, 3  # as torchrun sets them (no process group needed here)
    assert ranked.device(torch.device("cuda")) == torch.device("cuda", 3)
    assert ranked.device(torch.device("cuda", 1)) == torch.device("cuda", 1)  # an explicit index wins
    assert ranked.device(torch.device("cpu")) == torch.device("cpu")
