"""What --resume may change: the config given now against the one the checkpoint recorded."""

from __future__ import annotations

from nettrain.core.errors import UserError
from nettrain.training.state import TrainState

# Changing these would make the resumed run a different run: refused.
FIXED = (
    "seed",
    "dtype",
    "data",
    "model",
    "train.batch_size",
    "train.shuffle",
    "train.optimizer.name",
    "train.ema",
)


def flatten(tree, prefix="") -> dict:
    if isinstance(tree, dict):
        out = {}
        for k, v in tree.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: tree}


def check_resume(cfg: dict, recorded: dict, state: TrainState, where: str, messages=None) -> None:
    """Print to ``messages`` (a text stream, or None) every key of ``cfg`` that differs from the
    checkpoint's config ``recorded``; refuse those in FIXED, and a run with no epoch left."""
    old, new = flatten(recorded), flatten(cfg)
    old.setdefault("train.ema", 0.0)  # written before train.ema was a key: trained without it
    changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    for key in changed if messages is not None else ():
        print(f"resume: {key} changes from {old.get(key)!r} to {new.get(key)!r}", file=messages)
    fixed = [k for k in changed if any(k == f or k.startswith(f + ".") for f in FIXED)]
    if fixed:
        raise UserError(
            where,
            f"cannot resume with a different {fixed[0]}",
            "a resumed run must keep its net, data, seed and batching; "
            "start a new run (optionally --weights from this checkpoint)",
        )
    if cfg["train"]["epochs"] <= state.epoch and not state.partial:
        raise UserError(
            where,
            f"the run has already trained {state.epoch} epochs",
            f"raise train.epochs, e.g. --set train.epochs={state.epoch + 5}",
        )


def recorded_config(path, sets=()) -> tuple[dict, object]:
    """(config, its ConfigSource): the config checkpoint ``path`` recorded, ``sets`` applied (as
    ``--set`` gives them); what ``nettrain fit --resume CKPT`` without a CONFIG goes on with."""
    from nettrain import checkpoint
    from nettrain.config import config_from_dict

    _, meta = checkpoint.load(path)
    return config_from_dict(meta["config"], sets, f"{path} (config)", True)
