"""The in-process model's compute dtype follows the CPU: bf16 only where it is computed natively."""

from __future__ import annotations

import pytest
import torch

from llmos.errors import ConfigError
from llmos.llm.local.engine import cpu_has_native_bf16, pick_dtype

AVX2_ONLY = "processor\t: 0\nflags\t\t: fpu sse sse2 avx avx2 fma f16c\n"
AVX512_NO_BF16 = "flags\t\t: avx2 avx512f avx512bw avx512vl avx512_vnni\n"
AMX = "flags\t\t: avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"


def test_bf16_is_native_only_with_avx512_bf16_or_amx():
    assert not cpu_has_native_bf16(AVX2_ONLY)
    assert not cpu_has_native_bf16(AVX512_NO_BF16)  # AVX-512 alone still emulates bf16 matmuls
    assert cpu_has_native_bf16(AMX)
    assert cpu_has_native_bf16("flags : avx512_bf16\n")
    assert not cpu_has_native_bf16("")


def test_default_dtype_follows_this_cpu(monkeypatch):
    monkeypatch.delenv("LLMOS_LOCAL_DTYPE", raising=False)
    expected = torch.bfloat16 if cpu_has_native_bf16() else torch.float32
    assert pick_dtype() == expected


def test_the_setting_overrides_the_cpu_and_a_wrong_name_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("LLMOS_LOCAL_DTYPE", "bfloat16")
    assert pick_dtype() == torch.bfloat16
    monkeypatch.setenv("LLMOS_LOCAL_DTYPE", "float32")
    assert pick_dtype() == torch.float32
    monkeypatch.setenv("LLMOS_LOCAL_DTYPE", "bf16")
    with pytest.raises(ConfigError, match="bfloat16"):
        pick_dtype()
