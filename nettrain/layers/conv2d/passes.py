"""What a conv2d layer runs, as plan.py's ``plan()`` decides it: a ``Plan`` of three passes
(forward, input gradient, weight gradient), each its kernels and why, the direct kernels' passes
as ``Step``s over blocks of output channels."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Step:
    """``kernel`` computes output channels start .. stop - 1 of a pass: 'tile4x48', 'tile3x32'
    (tile.FORWARD), 'direct8', 'direct2', 'direct1' (direct.FORWARD), 'wgrad4', ... (wgrad.GRAD)."""

    kernel: str
    start: int
    stop: int


@dataclass(frozen=True)
class Pass:
    """The kernels of one pass, a short reason, and for the direct kernels the steps to run."""

    kernel: str
    reason: str
    steps: tuple[Step, ...] = ()


@dataclass(frozen=True)
class Plan:
    """What a conv2d layer runs. ``direct``: the direct kernels (on phase planes, phases.py, where
    ``phases``; on the packed batch, packed.py, where ``packed``), else im2col + BLAS, Winograd
    (winograd.py) where ``winograd``, or a 1x1 kernel's BLAS product a sample (pointwise.py)
    where ``pointwise``; with both ``direct`` and ``winograd``, the forward pass and the input
    gradient go through Winograd and the weight gradient through the direct kernels.
    ``inference``: where set, what an evaluation forward (predict, validation) runs instead of
    the training forward: Winograd F(4x4, 3x3) (a kernel 'wino4:...', wino4.py) or the direct
    kernels' steps on phase planes ('phases:...', phases.py). The
    direct kernels' output rows are as wide as the padded input (its width, ``pitch``; a phase
    plane's), and a pass computes the ``run`` = OH*pitch - (kw - 1) outputs that stay inside
    it; the input gradient likewise with ``dx_pitch`` and ``dx_run``. ``chunk``: samples per
    im2col matrix where it is not kept (evaluation, the input gradient)."""

    direct: bool
    forward: Pass
    input_grad: Pass
    weight_grad: Pass
    pitch: int
    run: int
    dx_pitch: int
    dx_run: int
    chunk: int
    winograd: bool = False
    phases: bool = False
    packed: bool = False
    pointwise: bool = False
    inference: Pass | None = None

    def passes(self) -> tuple[tuple[str, Pass], ...]:
        names = ("forward", "input grad", "weight grad", "inference")
        passes = (self.forward, self.input_grad, self.weight_grad, self.inference)
        return tuple((n, p) for n, p in zip(names, passes, strict=True) if p is not None)

    def lines(self, input_grad: bool = True) -> list[str]:
        """One line a pass: its name, its kernels and why; without ``input_grad`` (a first layer,
        whose input needs no gradient) that pass says it does not run."""
        lines = []
        for name, p in self.passes():
            if name == "input grad" and not input_grad:
                p = Pass("-", "not computed: the net's input needs no gradient")
            lines.append(f"{name:<12} {p.kernel:<24} {p.reason}")
        return lines


def blocks(count: int, widest: int, start: int = 0) -> list[tuple[int, int, int]]:
    """[(width, start, stop)]: channels start .. count - 1 in blocks of ``widest``, then pairs,
    then one; only the widths that they need."""
    wide = start + (count - start) // widest * widest
    pairs = wide + (count - wide) // 2 * 2
    spans = [(widest, start, wide), (2, wide, pairs), (1, pairs, count)]
    return [span for span in spans if span[2] > span[1]]


def count_text(n: int, word: str) -> str:
    """'1 filter', '3 filters'."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
