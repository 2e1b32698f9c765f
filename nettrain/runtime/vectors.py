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

``unit()`` says which vector unit the kernels are compiled for, as Numba decides it: the
features in NUMBA_CPU_FEATURES when it is set, else the host's (a NUMBA_CPU_NAME alone changes
the tuning, not the instruction set: Numba still passes the host's features). conv2d's plan
(nettrain/layers/conv2d/plan.py) picks its register tiles by it: AVX-512 has 32 vector registers,
AVX2 16, and a tile's sums must fit them.
"""

from __future__ import annotations

import functools
import os

TUNING = "-prefer-256-bit"
# unit() names: 512-bit vectors and 32 registers; 256-bit and 16 (AVX2 with FMA); anything else
AVX512, AVX2, OTHER = "avx512", "avx2", "other"


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


def _parse(features: str) -> dict[str, bool]:
    """{'avx2': True, ...} of an LLVM feature string '+avx2,-avx512f,...' (the last word wins)."""
    flags = {}
    for word in features.split(","):
        word = word.strip()
        if word[:1] in "+-" and len(word) > 1:
            flags[word[1:]] = word[0] == "+"
    return flags


def target_features() -> dict[str, bool]:
    """The CPU features Numba compiles for in this process: NUMBA_CPU_FEATURES when set, else the
    host's (empty where LLVM cannot read them)."""
    if "NUMBA_CPU_FEATURES" in os.environ:
        return _parse(os.environ["NUMBA_CPU_FEATURES"])
    import llvmlite.binding as llvm

    try:
        return dict(llvm.get_host_cpu_features())
    except RuntimeError:
        return {}


def unit_of(features: dict[str, bool]) -> str:
    """AVX512 where AVX-512 F is on (32 registers, whatever width LLVM prefers), AVX2 where AVX2
    and FMA are, else OTHER."""
    if features.get("avx512f"):
        return AVX512
    if features.get("avx2") and features.get("fma"):
        return AVX2
    return OTHER


@functools.cache
def unit() -> str:
    """The vector unit of this process's kernels (see unit_of), read once: Numba reads its
    settings once too."""
    return unit_of(target_features())
