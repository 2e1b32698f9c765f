"""nettrain.runtime.memory: pyarrow allocates with malloc unless the user chose its allocator, and
a read gives freed memory back. Each case in a fresh process (pyarrow picks its allocator once,
when it is first used)."""

import os
import subprocess
import sys

import pytest

PROBE = """
from nettrain.runtime.memory import keep_freed_memory, trim_freed_memory
print(keep_freed_memory())
import pyarrow as pa
trim_freed_memory()
print(pa.default_memory_pool().backend_name)
"""


def backend(env_pool=None) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    if env_pool:
        env["ARROW_DEFAULT_MEMORY_POOL"] = env_pool
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True,
                         check=True, timeout=120)  # fmt: skip
    return out.stdout.split()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_pyarrow_allocates_with_malloc_unless_the_user_chose():
    assert backend() == ["True", "system"]
    assert backend("mimalloc") == ["True", "mimalloc"]
