"""`--precision auto`: bfloat16 training only where the device computes it natively.

bfloat16 autocast pays off only on hardware with bf16 arithmetic: CUDA GPUs that support it
(compute capability 8.0 and later) and CPUs with AMX or AVX512-BF16. Elsewhere PyTorch emulates
it and a training step gets slower, not faster (measured on an AVX-512 Xeon without AMX: a 2048²
matmul at 142 GFLOP/s in fp32, 33 in bf16). ``auto`` therefore resolves, once per run,
to ``bf16`` or ``fp32``; what cells, results rows and training ids record is the resolved value.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from bench.errors import BenchError

PRECISIONS = ("fp32", "bf16")
CHOICES = ("auto", *PRECISIONS)
# /proc/cpuinfo flags of the x86 bfloat16 instructions (AMX tiles, AVX-512 BF16 dot products).
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none, e.g. macOS)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_has_native_bf16() -> bool:
    """AMX-BF16 or AVX512-BF16, from /proc/cpuinfo, else from torch's own CPU probe."""
    if cpu_flags():
        return any(flag in cpu_flags() for flag in BF16_CPU_FLAGS)
    import torch

    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    cpu = getattr(torch._C, "_cpu", None)
    return any(bool(getattr(cpu, name, lambda: False)()) for name in probes)


def native_bf16(device: str) -> bool:
    """Whether ``device`` ("cpu", "cuda", "cuda:1", ...) computes bfloat16 natively."""
    import torch

    if str(device).startswith("cuda"):
        if not torch.cuda.is_available():
            return False
        index = torch.device(device).index or 0
        return torch.cuda.get_device_capability(index) >= (8, 0)
    return cpu_has_native_bf16()


def resolve_precision(requested: str, device: str) -> str:
    """``fp32`` or ``bf16``: ``auto`` becomes bf16 exactly where :func:`native_bf16` holds."""
    if requested not in CHOICES:
        raise BenchError(f"--precision {requested!r} is not valid; valid values: "
                         f"{', '.join(CHOICES)}")
    if requested != "auto":
        return requested
    return "bf16" if native_bf16(device) else "fp32"
