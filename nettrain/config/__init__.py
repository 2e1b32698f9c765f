"""Config loading and validation: ``load_config(path, sets)`` -> (resolved config, source)."""

from __future__ import annotations

import copy

from nettrain.config.schema import validate
from nettrain.config.source import ConfigSource


def load_config(path, sets=()) -> tuple[dict, ConfigSource]:
    """Read a YAML config, apply ``--set`` overrides, validate; (resolved dict, source)."""
    src = ConfigSource.from_file(path)
    src.apply_overrides(sets)
    return validate(src), src


def config_from_dict(tree: dict, sets=()) -> tuple[dict, ConfigSource]:
    """Validate an in-memory config tree (e.g. the one stored in a checkpoint)."""
    src = ConfigSource(copy.deepcopy(tree), "<checkpoint config>")
    src.check_files = False  # a checkpoint must still load when its training data has moved
    src.apply_overrides(sets)
    return validate(src), src


__all__ = ["ConfigSource", "config_from_dict", "load_config", "validate"]
