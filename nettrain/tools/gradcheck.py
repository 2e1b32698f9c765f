"""Finite-difference proof of every gradient of a net (docs/commands.md, "gradcheck").

For the batch loss L (mean over samples) of a float64 net on a few samples, every parameter
tensor and the input are checked entry by entry: the backpropagated a = dL/dw against the
central difference n = (L(w + h) - L(w - h)) / 2h. Entries whose perturbation crosses a point
where the net is not differentiable (a relu input crossing 0, a max-pool switch; each layer's
``kinks()`` tells) are counted, not failed. Large tensors are checked on a fixed, seeded subset.
The loss is the training mode's (dropout masks redrawn alike on every pass, batchnorm on the
batch's statistics); the state (batchnorm's running statistics) is not differentiated, and is
left as it was.

The tolerance follows the errors the two sides really have, so that a correct net passes at any
scale of its targets and loss while a wrong backward still fails. An entry of tensor T passes
when

    |a - n| <= rtol * G_T + 16 * eps * |L| / h        (rtol = 1e-5, eps = 2.2e-16, h = 1e-6)

- ``16 * eps * |L| / h``, the rounding of the difference: n divides the difference of two loss
  values by 2h, and each value is rounded (in the sums of the forward pass and of the loss) by
  a few units in the last place of |L|, c * eps * |L|. So n carries an absolute error of about
  c * eps * |L| / h, the same for every entry however small its gradient. With |L| ~ 3e4
  (regression on targets in the hundreds) that is ~7e-6, far above a fixed absolute tolerance
  such as 1e-8: the reason a fixed one failed correct nets whose loss is large. c is taken as
  16; the measured c is about 1.
- ``rtol * G_T``, G_T the largest |a| or |n| of the tensor: a is computed by sums whose terms
  have the size of the tensor's large entries, so its rounding error is relative to G_T, not to
  the entry (an entry's own relative error means nothing when the entry is a small difference
  of large terms). This term scales with the gradients: targets divided by 100 divide both
  sides of the test by 100, which leaves the same test.
- The truncation error of the central difference, h^2/6 times the third derivative, is about
  1e-12 relative at h = 1e-6 and is covered by the rtol term.

A wrong backward errs on the tensor's large entries too (a wrong derivative, a missing term, a
gradient 1% too large): those errors are a fixed fraction of G_T, far above 1e-5 of it, and
fail. ``atol`` (0 by default) adds a fixed floor for callers that want one. The report's
``max rel err`` (the largest |a - n| / max(|a|, |n|) of an entry) is shown for information.

It also runs the step check of docs/maths.md ("Numerical validation"): after one small step
w <- w - a g on every parameter, the loss changes by about -a |g|^2.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nettrain import checkpoint, data
from nettrain.assemble import assemble, has_data, require_input_shape
from nettrain.config import load_config
from nettrain.core.step import Step
from nettrain.core.streams import gradcheck_entries_rng, gradcheck_rng, init_rng
from nettrain.net.network import Network
from nettrain.net.outputs import output_range


@dataclass
class TensorCheck:
    name: str
    size: int
    checked: int = 0
    kinks: int = 0
    max_abs: float = 0.0
    max_rel: float = 0.0
    tolerance: float = 0.0
    failed: int = 0

    @property
    def ok(self) -> bool:
        return self.failed == 0


@dataclass
class StepCheck:
    """The seed's numerical validation: predicted vs actual loss change of one small step."""

    step: float
    predicted: float
    actual: float
    tolerance: float = 0.05

    @property
    def ratio(self) -> float:
        return self.actual / self.predicted if self.predicted else 1.0

    @property
    def ok(self) -> bool:
        return self.predicted == 0 or abs(self.ratio - 1) <= self.tolerance


NOISE_ULPS = 16  # rounding error of one loss evaluation, in units of eps * |L|


def check_net(
    net: Network, x, t, *, entries=64, check_all=False, h=1e-6, rtol=1e-5, atol=0.0, seed=0
):
    """(list of TensorCheck, StepCheck) for ``net`` (float64) on inputs x and targets t.

    An entry fails when |a - n| > atol + rtol * G_T + NOISE_ULPS * eps * |L| / h (the module
    docstring says why)."""
    if net.dtype != np.float64:
        raise ValueError("gradcheck needs a float64 net")
    x = np.array(x, dtype=np.float64)
    state = {k: a.copy() for k, a in net.state().items()}  # training passes update it
    at = Step(seed, 0)  # every pass below is at this step: it redraws the same dropout masks
    base_loss, _, dx = net.loss_and_backward(x, t, step=at)
    analytic = {"input": dx.copy(), **{k: g.copy() for k, g in net.grads().items()}}
    rng = gradcheck_entries_rng(seed)
    rounding = atol + NOISE_ULPS * np.finfo(np.float64).eps * abs(float(base_loss)) / h

    def loss():
        s, out, saved = net.forward_saving(x, at)
        value, _ = net.loss_of(s, out, t)
        return value, [layer.kinks(kept) for layer, kept in zip(net.layers, saved, strict=True)]

    _, base_kinks = loss()

    results = []
    for name, tensor in {**net.params(), "input": x}.items():
        flat, grad = tensor.reshape(-1), analytic[name].reshape(-1)
        picks = np.arange(flat.size)
        if not check_all and flat.size > entries:
            picks = np.sort(rng.choice(flat.size, size=entries, replace=False))
        result = TensorCheck(name, flat.size)
        pairs = []  # (analytic, numeric) of each entry checked
        for k in picks:
            old = flat[k]
            flat[k] = old + h
            up, kinks_up = loss()
            flat[k] = old - h
            down, kinks_down = loss()
            flat[k] = old
            if not (_same(kinks_up, base_kinks) and _same(kinks_down, base_kinks)):
                result.kinks += 1
                continue
            pairs.append((float(grad[k]), (up - down) / (2 * h)))
        scale = max([float(np.max(np.abs(grad), initial=0.0))] + [abs(n) for _, n in pairs])
        result.tolerance = rtol * scale + rounding
        for a, numeric in pairs:
            err = abs(a - numeric)
            result.checked += 1
            result.max_abs = max(result.max_abs, err)
            result.max_rel = max(result.max_rel, err / max(abs(a), abs(numeric)) if err else 0.0)
            if err > result.tolerance:
                result.failed += 1
        results.append(result)
    step = step_check(net, x, t, analytic, seed)
    for k, a in net.state().items():
        a[...] = state[k]
    return results, step


def step_check(net: Network, x, t, analytic, seed=0) -> StepCheck:
    """Take w <- w - a g on all parameters, with a sized so that a |g|^2 is a 1e-4 of the loss;
    the actual loss change should match -a |g|^2 to first order. Parameters are restored."""
    params = net.params()
    before, _ = net.evaluate(x, t, train=Step(seed, 0))
    g2 = sum(float(np.sum(analytic[k] ** 2)) for k in params)
    if g2 == 0:
        return StepCheck(0.0, 0.0, 0.0)
    a = 1e-4 * max(abs(before), 1e-3) / g2
    saved = {k: p.copy() for k, p in params.items()}
    for k, p in params.items():
        p -= a * analytic[k]
    after, _ = net.evaluate(x, t, train=Step(seed, 0))
    for k, p in params.items():
        p[...] = saved[k]
    return StepCheck(a, -a * g2, after - before)


def _same(a, b) -> bool:
    return all(
        (u is None and v is None) or (u is not None and v is not None and np.array_equal(u, v))
        for u, v in zip(a, b, strict=True)
    )


def format_report(results, step: StepCheck) -> str:
    """The table printed by `nettrain gradcheck`."""
    lines = [
        f"{'tensor':<22} {'entries':>9} {'checked':>8} {'kinks':>6} {'max abs err':>12} "
        f"{'tolerance':>10} {'max rel err':>12}  verdict"
    ]
    for r in results:
        verdict = "ok" if r.ok else f"FAIL ({r.failed} entries)"
        lines.append(
            f"{r.name:<22} {r.size:>9} {r.checked:>8} {r.kinks:>6} {r.max_abs:>12.3e} "
            f"{r.tolerance:>10.2e} {r.max_rel:>12.3e}  {verdict}"
        )
    verdict = "ok" if step.ok else "FAIL"
    lines.append(
        f"step check: w <- w - a*g with a = {step.step:.3e}: loss change {step.actual:.6e}, "
        f"predicted -a*|g|^2 = {step.predicted:.6e} (ratio {step.ratio:.4f})  {verdict}"
    )
    return "\n".join(lines)


def gradcheck_config(config, sets=(), weights=None, samples=4, entries=64, check_all=False):
    """(report text, passed) for the net of a config file, built in float64.

    The checked batch is ``samples`` seeded picks from the configured training data (after
    data.preprocess), or random inputs and targets of the right shapes when the config has none.
    """
    cfg, src = load_config(config, sets)
    require_input_shape(cfg, src)
    net, train, _ = assemble(cfg, src, np.float64, with_data=has_data(cfg))
    if train is not None:  # the inputs as training sees them: preprocessed
        _, (train, _, _), _ = data.for_training(cfg["data"], net.input_shape, (train, None, None))
    if weights:
        net.load_params(checkpoint.load_weights(weights), weights)
    else:
        net.init_params(init_rng(cfg["seed"]))
    rng = gradcheck_rng(cfg["seed"])
    if not weights:
        # Zero biases put every relu input of a blank image region exactly on the kink at 0;
        # small random biases move the check point off it, so biases get checked too.
        for name, p in net.params().items():
            if name.endswith(".bias"):
                p[...] = rng.uniform(-0.1, 0.1, size=p.shape)
    if train is not None:
        idx = np.sort(rng.choice(len(train), size=min(samples, len(train)), replace=False))
        x, t = train.inputs(idx, np.float64), train.targets(idx, net.n_outputs, np.float64)
    else:
        x = rng.standard_normal((samples, *net.input_shape))
        t = random_targets(rng, samples, net)
    results, step = check_net(net, x, t, entries=entries, check_all=check_all, seed=cfg["seed"])
    ok = all(r.ok for r in results) and step.ok
    return format_report(results, step), ok


def random_targets(rng, n: int, net: Network) -> np.ndarray:
    """Targets the net's loss accepts: one-hot classes for outputs that are a distribution
    (softmax), values in (0, 1) for cross_entropy, normal values for squared_error."""
    k = net.n_outputs
    if output_range(net)[1].distribution:
        return np.eye(k)[rng.integers(0, k, size=n)]
    if net.loss_name == "cross_entropy":
        return rng.uniform(0.05, 0.95, size=(n, k))
    return rng.standard_normal((n, k))
