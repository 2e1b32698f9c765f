"""Loading named arrays (a checkpoint's, ``--weights``) into a built net's parameters and state."""

from __future__ import annotations

import numpy as np

from nettrain.core.errors import UserError


def load_checked(params: dict, state: dict, arrays: dict, where: str) -> None:
    """Copy named ``arrays`` (e.g. from a checkpoint) into the parameters and state, checking
    each one.

    Every ``layers.*`` array must match a parameter or state array by name and shape and
    hold finite floating-point values; float16/32/64 are cast to the net's dtype (fine-tuning
    a float32 run from float64 weights is legitimate), integer, complex or text arrays are
    refused."""

    targets = {**params, **state}
    hint = "the checkpoint was written for a different model.layers"
    missing = [k for k in targets if k not in arrays]
    if missing:
        what = "parameter" if missing[0] in params else "state (a running statistic)"
        raise UserError(where, f"no array '{missing[0]}' for this net's {what}", hint)
    extra = [k for k in arrays if k.startswith("layers.") and k not in targets]
    if extra:
        raise UserError(where, f"array '{extra[0]}' matches no parameter of this net", hint)
    for name, p in targets.items():
        a = arrays[name]
        if a.shape != p.shape:
            raise UserError(where, f"'{name}' has shape {a.shape}, this net needs {p.shape}", hint)
        if a.dtype.kind != "f":
            raise UserError(
                where, f"'{name}' holds {a.dtype} values; parameters must be floating-point"
            )
        if not np.all(np.isfinite(a)):
            raise UserError(where, f"'{name}' holds NaN or Inf values")
        p[...] = a
