"""512-bit vectors for nettrain's kernels on AVX-512 CPUs.

LLVM tunes Intel's AVX-512 CPUs (Skylake-SP to Emerald Rapids) to prefer 256-bit vectors, so
Numba's kernels use half the width that these CPUs' two 512-bit FMA units can take, while
PyTorch's oneDNN kernels use all of it. Measured on 2 cores of an Intel Xeon (Emerald Rapids,
192.8 GFLOP/s float32 GEMM peak), ``nettrain bench`` training steps, 256 -> 512-bit: the CIFAR
net (benchmarks/configs/cifar.yaml) 344 -> 547 samples/s, LeNet 6,963 -> 12,681. LLVM already
uses 512 bits on AMD Zen 4, where this changes nothing; CPUs without AVX-512 are left alone.

How: before Numba builds its code generator, NUMBA_CPU_FEATURES is set to the host's features
plus "-prefer-256-bit" (Numba reads it once; it is also part of its cache key, so kernels cached
for another setting are compiled again). A NUMBA_CPU_NAME or NUMBA_CPU_FEATURES the user set is
kept as it is: setting either turns this off. The variable is in the process's environment, so
processes it starts inherit it: they run on the same CPU. (MPI ranks are started by mpirun, with
the user's environment, and each sets it for its own CPU.)
"""

from __future__ import annotations

import os

TUNING = "-prefer-256-bit"


def use_full_width() -> bool:
    """Set NUMBA_CPU_FEATURES as above where the CPU has AVX-512 and the user set neither
    variable; True when it did. It must run before Numba compiles anything."""
    if "NUMBA_CPU_FEATURES" in os.environ or "NUMBA_CPU_NAME" in os.environ:
        return False
    import llvmlite.binding as llvm

    try:
        features = llvm.get_host_cpu_features()
    except RuntimeError:  # LLVM cannot read this CPU's features: keep Numba's defaults
        return False
    if not features.get("avx512f"):
        return False
    os.environ["NUMBA_CPU_FEATURES"] = f"{features.flatten()},{TUNING}"
    return True


def describe() -> str:
    """What Numba compiles for in this process, in words (``nettrain bench`` prints it)."""
    import llvmlite.binding as llvm

    name = os.environ.get("NUMBA_CPU_NAME") or llvm.get_host_cpu_name()
    if os.environ.get("NUMBA_CPU_FEATURES", "").endswith(TUNING):
        return f"compiled for {name}, 512-bit vectors"
    if "NUMBA_CPU_NAME" in os.environ or "NUMBA_CPU_FEATURES" in os.environ:
        return f"compiled for {name}, with the NUMBA_CPU_NAME / NUMBA_CPU_FEATURES given"
    return f"compiled for {name}, at the vector width LLVM prefers there"
