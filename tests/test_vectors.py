"""512-bit vectors on AVX-512 CPUs (nettrain/runtime/vectors.py): when the setting is made, that
the user's own settings win, and that kernels compiled with it (as every nettrain command compiles
them) still match the slow references."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import llvmlite.binding
import pytest

from nettrain.runtime import vectors


class Features(dict):
    """What llvmlite.binding.get_host_cpu_features returns: a dict that can flatten itself."""

    def flatten(self):
        return ",".join(("+" if on else "-") + name for name, on in self.items())


@pytest.fixture
def clean_env(monkeypatch):
    monkeypatch.delenv("NUMBA_CPU_FEATURES", raising=False)
    monkeypatch.delenv("NUMBA_CPU_NAME", raising=False)
    return monkeypatch


def test_avx512_cpus_get_the_host_features_without_the_256_bit_preference(clean_env):
    clean_env.setattr(llvmlite.binding, "get_host_cpu_features", lambda: Features(avx512f=True))
    assert vectors.use_full_width()
    assert os.environ["NUMBA_CPU_FEATURES"] == "+avx512f,-prefer-256-bit"


def test_other_cpus_and_the_users_settings_are_left_alone(clean_env):
    clean_env.setattr(llvmlite.binding, "get_host_cpu_features", lambda: Features(avx2=True))
    assert not vectors.use_full_width() and "NUMBA_CPU_FEATURES" not in os.environ
    clean_env.setattr(llvmlite.binding, "get_host_cpu_features", lambda: Features(avx512f=True))
    for name, value in (("NUMBA_CPU_NAME", "skylake-avx512"), ("NUMBA_CPU_FEATURES", "+avx2")):
        clean_env.setenv(name, value)
        assert not vectors.use_full_width()
        assert os.environ[name] == value
        clean_env.delenv(name)


def test_describe_says_what_the_kernels_are_compiled_for(clean_env):
    clean_env.setattr(llvmlite.binding, "get_host_cpu_name", lambda: "sapphirerapids")
    assert vectors.describe().endswith("at the vector width LLVM prefers there")
    clean_env.setenv("NUMBA_CPU_FEATURES", "+avx512f,-prefer-256-bit")
    assert vectors.describe() == "compiled for sapphirerapids, 512-bit vectors"
    clean_env.setenv("NUMBA_CPU_NAME", "haswell")
    clean_env.setenv("NUMBA_CPU_FEATURES", "+avx2")
    assert vectors.describe().startswith("compiled for haswell, with the NUMBA_CPU_NAME")


def test_kernels_compiled_as_the_commands_compile_them_match_the_references(tmp_path):
    """A fresh process configured as nettrain's commands are (before Numba starts), a Numba cache
    of its own: conv2d (register tiles, weight gradient, input gradient) against the reference."""
    script = textwrap.dedent(
        """
        import sys
        from nettrain.runtime import threads
        threads.configure(2)
        import numpy as np
        from numba.core.registry import cpu_target
        from helpers import build
        from references import conv_backward, conv_forward
        from nettrain.layers.conv2d.layer import Conv2d
        layer = build(Conv2d, (8, 10, 9), dtype=np.float32, filters=10, kernel=3, padding="same")
        rng = np.random.default_rng(0)
        x = rng.standard_normal((3, 8, 10, 9)).astype(np.float32)
        dy = rng.standard_normal((3, 10, 10, 9)).astype(np.float32)
        y, saved = layer.forward(x)
        dx = layer.backward(saved, dy)
        w, b = layer.params["weight"].astype(np.float64), layer.params["bias"].astype(np.float64)
        np.testing.assert_allclose(y, conv_forward(x, w, b, (1, 1), (1, 1)), atol=1e-4)
        ref_dx, ref_dw, ref_db = conv_backward(x, w, dy, (1, 1), (1, 1))
        np.testing.assert_allclose(dx, ref_dx, atol=1e-4)
        np.testing.assert_allclose(layer.grads["weight"], ref_dw, rtol=1e-4, atol=1e-3)
        np.testing.assert_allclose(layer.grads["bias"], ref_db, rtol=1e-4, atol=1e-3)
        print(cpu_target.target_context.codegen()._tm_features.endswith("-prefer-256-bit"))
        """
    )
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    env.pop("NUMBA_CPU_FEATURES", None)
    env.pop("NUMBA_CPU_NAME", None)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent), env.get("PYTHONPATH", "")])
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    avx512 = bool(llvmlite.binding.get_host_cpu_features().get("avx512f"))
    assert result.stdout.split()[-1] == str(avx512)
