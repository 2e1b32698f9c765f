"""nettrain: train neural nets described in YAML, backprop written by hand on numpy and Numba.

``import nettrain`` is light (no numpy, no Numba); ``nettrain.load`` and ``nettrain.Model``
(nettrain/api.py) import the library when first used.
"""

__version__ = "0.1.0"
__all__ = ["Model", "__version__", "load"]


def __getattr__(name: str):
    if name in ("load", "Model"):
        from nettrain import api

        return getattr(api, name)
    raise AttributeError(f"module 'nettrain' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), "load", "Model"])
