"""What --resume may change: the config given now against the one the checkpoint recorded."""

from __future__ import annotations

import sys

from nettrain.core.errors import UserError

# Changing these would make the resumed run a different run: refused.
FIXED = (
    "seed",
    "dtype",
    "data",
    "model",
    "train.batch_size",
    "train.shuffle",
    "train.optimizer.name",
)


def flatten(tree, prefix="") -> dict:
    if isinstance(tree, dict):
        out = {}
        for k, v in tree.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: tree}


def check_resume(cfg: dict, meta: dict, where: str, report: bool = True) -> None:
    """Print every key that differs from the checkpoint's config (unless ``report`` is off);
    refuse those in FIXED."""
    if "epoch" not in meta or "step" not in meta:
        raise UserError(
            where,
            "this checkpoint holds weights only; it cannot be resumed",
            "start a new run from it with --weights instead",
        )
    old, new = flatten(meta["config"]), flatten(cfg)
    changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    for key in changed if report else ():
        print(f"resume: {key} changes from {old.get(key)!r} to {new.get(key)!r}", file=sys.stderr)
    fixed = [k for k in changed if any(k == f or k.startswith(f + ".") for f in FIXED)]
    if fixed:
        raise UserError(
            where,
            f"cannot resume with a different {fixed[0]}",
            "a resumed run must keep its net, data, seed and batching; "
            "start a new run (optionally --weights from this checkpoint)",
        )
    if cfg["train"]["epochs"] <= meta["epoch"] and not meta.get("partial"):
        raise UserError(
            where,
            f"the run has already trained {meta['epoch']} epochs",
            f"raise train.epochs, e.g. --set train.epochs={meta['epoch'] + 5}",
        )
