"""``precision: auto``: bf16 autocast only where the hardware computes bf16 natively."""

from __future__ import annotations

import pytest
import torch

from pathgan.config import TrainConfig
from pathgan.device import cpu_has_native_bf16, resolve_precision
from pathgan.errors import ConfigError

# /proc/cpuinfo excerpts: an AVX-512 Ice Lake (bf16 only emulated) and a Sapphire Rapids (AMX, AVX-512 BF16)
ICE_LAKE = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512bw avx512vl avx512_vnni\n"
SAPPHIRE = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
ZEN4 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16\n"


def test_native_bf16_is_read_from_the_cpu_flags() -> None:
    assert not cpu_has_native_bf16(ICE_LAKE)
    assert cpu_has_native_bf16(SAPPHIRE) and cpu_has_native_bf16(ZEN4)
    assert not cpu_has_native_bf16("")  # nothing known: the safe fp32
    # the word in another field does not count
    assert not cpu_has_native_bf16("model name\t: avx512_bf16 lookalike\nflags\t\t: avx2\n")


def test_auto_picks_bf16_only_on_native_hardware_and_passes_explicit_values() -> None:
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu, ICE_LAKE) == "fp32"
    assert resolve_precision("auto", cpu, SAPPHIRE) == "bf16"
    for explicit in ("fp32", "bf16", "fp16"):
        assert resolve_precision(explicit, cpu, ICE_LAKE) == explicit
    assert resolve_precision("auto", torch.device("meta"), SAPPHIRE) == "fp32"  # neither cpu nor cuda


def test_precision_values_are_checked() -> None:
    assert TrainConfig(precision="auto").precision == "auto"
    with pytest.raises(ConfigError, match="precision"):
        TrainConfig(precision="bf32")  # type: ignore[arg-type]
