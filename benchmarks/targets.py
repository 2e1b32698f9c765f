"""The Numba target of nettrain's processes in benchmarks/run.py: ``--cpu-name NAME`` runs them
with their kernels compiled for another CPU (NUMBA_CPU_NAME=NAME, and a fresh Numba cache of
their own), e.g. the AVX2 code paths (``haswell``, ``znver2``) on an AVX-512 machine. Numba passes
the host's features whatever the name, so for the CPUs in AVX2_CPUS NUMBA_CPU_FEATURES is set to
the host's with AVX-512 off; ``--cpu-features`` sets it outright."""

from __future__ import annotations

import tempfile

# LLVM CPU names without AVX-512: --cpu-name turns the host's AVX-512 features off for these
AVX2_CPUS = ("haswell", "broadwell", "skylake", "znver1", "znver2", "znver3", "alderlake")


def numba_target(name: str | None, features: str | None) -> dict:
    """The environment in which nettrain's processes compile for CPU ``name``; {} for the host."""
    if name is None and features is None:
        return {}
    env = {"NUMBA_CACHE_DIR": tempfile.mkdtemp(prefix="nettrain-bench-numba-")}
    if name is not None:
        env["NUMBA_CPU_NAME"] = name
    if features is None and name in AVX2_CPUS:
        import llvmlite.binding as llvm

        host = llvm.get_host_cpu_features()
        on = {key: value and not key.startswith("avx512") for key, value in host.items()}
        features = ",".join(("+" if value else "-") + key for key, value in on.items())
    if features is not None:
        env["NUMBA_CPU_FEATURES"] = features
    return env


def target_text(target: dict) -> str:
    """'haswell, AVX-512 off' for the table's head (the JSON has the whole feature string)."""
    features = target.get("NUMBA_CPU_FEATURES")
    words = [target.get("NUMBA_CPU_NAME", "the host CPU")]
    if features is not None:
        words.append("AVX-512 on" if "+avx512f" in features.split(",") else "AVX-512 off")
    return ", ".join(words)
