"""precision=auto picks bf16 autocast per machine: on CUDA, and on CPUs with native bf16
(AVX-512 BF16 / AMX); fp32 on other CPUs (bf16 is emulated there, ~14x slower)."""

from __future__ import annotations

import pytest
import torch

from jepa_world import devices
from jepa_world.devices import use_bf16
from jepa_world.planning.config import PlanConfig
from jepa_world.training.harness import autocast

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def test_auto_follows_the_cpu_and_fixed_choices_do_not():
    assert use_bf16("auto", CPU, native_bf16=lambda: True)
    assert not use_bf16("auto", CPU, native_bf16=lambda: False)
    assert use_bf16("auto", CUDA, native_bf16=lambda: False)
    for native in (True, False):
        assert use_bf16("bf16", CPU, native_bf16=lambda n=native: n)
        assert not use_bf16("fp32", CPU, native_bf16=lambda n=native: n)
        assert not use_bf16("fp32", CUDA, native_bf16=lambda n=native: n)
    with pytest.raises(ValueError, match="precision must be one of"):
        use_bf16("fp16", CPU)


@pytest.mark.parametrize("flags,expected", [((True, False), True), ((False, True), True),
                                            ((False, False), False)])
def test_native_bf16_reads_the_cpu_capability(monkeypatch, flags, expected):
    avx512_bf16, amx = flags
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    assert devices.cpu_has_native_bf16() is expected
    context, bf16 = autocast("auto", CPU)  # training takes the same choice
    assert bf16 is expected
    with context:
        assert torch.is_autocast_enabled("cpu") is expected


def test_plan_config_checks_precision():
    assert PlanConfig().precision == "fp32"
    assert PlanConfig(precision="auto").precision == "auto"
    from jepa_world.errors import ConfigError

    with pytest.raises(ConfigError, match="precision"):
        PlanConfig(precision="half")
