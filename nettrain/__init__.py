"""nettrain: train neural nets described in YAML, backprop written by hand on numpy and Numba."""

__version__ = "0.1.0"
