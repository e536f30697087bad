"""The EMA of the trained weights (what is validated and saved): the documented warmed-up average, integer
buffers copied, and a checkpoint's EMA loaded onto the module's device."""

from __future__ import annotations

import pytest
import torch

from diffmic.ema import EMA


def test_the_shadow_is_the_warmed_up_exponential_average():
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    decay = 0.9
    ema = EMA(module, decay)
    expected = module[0].weight.detach().clone()
    for n in range(1, 26):  # through the warm-up ((1 + n) / (10 + n) < 0.9 for n < 80) and past a cap
        with torch.no_grad():
            module[0].weight.copy_(torch.randn(2, 3))
            module[1].num_batches_tracked.fill_(n)
        ema.update(module)
        d = min(decay, (1 + n) / (10 + n))
        expected = d * expected + (1 - d) * module[0].weight.detach()
        torch.testing.assert_close(ema.shadow["0.weight"], expected)
    assert ema.updates == 25 and int(ema.shadow["1.num_batches_tracked"]) == 25  # copied, not averaged
    capped = EMA(module, 0.2)
    before = capped.shadow["0.weight"].clone()
    capped.update(module)  # (1 + 1) / (10 + 1) > 0.2: the decay itself
    torch.testing.assert_close(capped.shadow["0.weight"], 0.2 * before + 0.8 * module[0].weight.detach())


def test_ema_keeps_its_device_when_loaded_from_a_cpu_checkpoint():
    module = torch.nn.Linear(3, 2, device="meta")
    ema = EMA(module, 0.9)
    ema.load_state_dict(EMA(torch.nn.Linear(3, 2), 0.9).state_dict())
    assert {v.device.type for v in ema.shadow.values()} == {"meta"} and ema.updates == 0
    with pytest.raises(ValueError, match="another module"):
        ema.load_state_dict(EMA(torch.nn.Sequential(torch.nn.Linear(3, 2)), 0.9).state_dict())
