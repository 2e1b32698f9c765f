"""Parallel loops that call a serial kernel through its address, so that compiling the loop does
not compile the kernel again.

Numba links the code of every jitted function a kernel calls into the caller's and optimises the
whole once more; a ``prange`` loop's body is itself compiled as a function linked into the loop's:
a serial kernel called from a parallel loop is optimised three times. On a first run (an empty
cache) that was most of what LeNet waited for: the weight gradient's loop took 2.6 s to compile
on top of its kernel's 3.2 (AMD EPYC Zen 4), the register tiles' 1.6 on top of 1.0.

Here the loop never names the kernel. ``Kernel`` keeps a table of the kernel's compiled versions,
one row (signature key, address of its native function) each, and a loop gets the table as an
argument, finds the row of the argument types it calls with (``address``: the key is a constant
of the loop's compiled code) and calls through the address (``call``), with Numba's own calling
convention. Nothing ties the loop's code to a process, so it is cached on disk like any kernel.
``run`` calls a loop; a loop returns False when the table has no row for its types (the first call
in a process): ``run`` then compiles the kernel for them, or loads it from the cache, adds its
row and calls the loop again. The work and its order are those of a loop calling the kernel
directly: the same bits, the same thread counts.

``parallel`` itself is not cached on disk: a loop compiles it into its own code, and the loop is
cached with it. Cached, a loop compiled again (its module changed: an upgrade, an edit) in a
process that had found ``parallel`` in the cache was written to the cache broken, and the next
process crashed on the loop's first call (a segmentation fault; tests/test_native.py). Compiling
``parallel`` with each loop that is compiled costs nothing on a run whose loops are cached.

A kernel takes the loop's arguments followed by the index of the parallel loop (int64), and does
that index's share of the work; a loop passes its arguments on as they are, and ``parallel`` runs
the indices::

    @njit(cache=True)
    def loop(table, a, b):
        return native.parallel(table, (a, b), len(a))
"""

from __future__ import annotations

import zlib

import numpy as np
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic


def _key(argtypes) -> int:
    """A kernel signature's key: a checksum of its argument types, the same in every process."""
    text = ", ".join(str(types.unliteral(t)) for t in argtypes)
    return zlib.crc32(text.encode())


@intrinsic
def _signature_key(typingctx, args):
    """The key (int64, a constant) of a kernel taking ``args`` (a tuple) and an int64 index."""
    key = _key((*args.types, types.int64))

    def codegen(context, builder, signature, llargs):
        return context.get_constant(types.int64, key)

    return types.int64(args), codegen


@intrinsic
def call(typingctx, address, args, index):
    """The native function at ``address`` (a kernel's, see Kernel.table) called with the values
    of the tuple ``args`` and ``index`` (as int64). An exception it raises is passed on as a
    call's would be; out of a parallel loop, Numba turns it into a SystemError."""
    argtypes = tuple(types.unliteral(t) for t in args.types) + (types.int64,)

    def codegen(context, builder, signature, llargs):
        address_value, tuple_value, index_value = llargs
        values = [builder.extract_value(tuple_value, i) for i in range(len(args.types))]
        index_value = context.cast(builder, index_value, index, types.int64)
        fnty = context.call_conv.get_function_type(types.none, argtypes)
        fn = builder.inttoptr(address_value, fnty.as_pointer())
        status, _ = context.call_conv.call_function(
            builder, fn, types.none, argtypes, [*values, index_value]
        )
        with cgutils.if_unlikely(builder, status.is_error):
            context.call_conv.return_status_propagate(builder, status)
        return context.get_dummy_value()

    return types.none(types.int64, args, index), codegen


@njit(cache=True, inline="always")
def address(table, args):
    """The address in ``table`` (rows: key, address) of the kernel version that takes ``args``
    and an int64 index; 0 if there is none yet."""
    key = _signature_key(args)
    for row in range(len(table)):
        if table[row, 0] == key:
            return table[row, 1]
    return 0


@njit(parallel=True)  # not cached: see the module docstring
def parallel(table, args, count):
    """The kernel of ``table`` called with ``args`` and each index i < count, in parallel;
    False (and nothing called) when the table has no version for the types of ``args``."""
    fn = address(table, args)
    if fn == 0:
        return False
    for i in prange(count):
        call(fn, args, i)
    return True


class Kernel:
    """A serial Numba kernel (a dispatcher) and ``table``, its compiled versions' rows."""

    def __init__(self, dispatcher):
        self.dispatcher = dispatcher
        self.table = np.zeros((0, 2), dtype=np.int64)

    def add(self, args: tuple) -> np.ndarray:
        """Compile the kernel for ``args`` and an int64 index (or load it from Numba's cache), and
        rebuild the table from every version it has; returns that table (``self.table`` may
        already be another thread's by then)."""
        argtypes = tuple(self.dispatcher.typeof_pyval(a) for a in args) + (types.int64,)
        self.dispatcher.compile(argtypes)
        rows = [
            (_key(sig), result.library.get_pointer_to_function(result.fndesc.llvm_func_name))
            for sig, result in list(self.dispatcher.overloads.items())  # one read: threads
        ]
        self.table = table = np.array(rows, dtype=np.int64).reshape(-1, 2)
        return table


def run(loop, kernel: Kernel, *args) -> None:
    """``loop(kernel.table, *args)``, first adding the kernel's version for ``args`` when the loop
    finds none (a loop must pass its own arguments to the kernel, as they are)."""
    if loop(kernel.table, *args):
        return
    if not loop(kernel.add(args), *args):
        name = kernel.dispatcher.__name__
        raise RuntimeError(f"{name}: the loop calls it with other types than its own arguments")
