"""The layer table: YAML `type` -> layer class. Adding a layer = one file + one entry here (and
its block in tests/test_layer_table.py, which fails for a layer it has no reference for)."""

from nettrain.layers.base import ACTIVATION_NAMES, Layer, ShapeError
from nettrain.layers.conv2d import Conv2d
from nettrain.layers.dense import Dense
from nettrain.layers.dropout import Dropout
from nettrain.layers.linear import Linear
from nettrain.layers.maxpool2d import MaxPool2d
from nettrain.layers.relu import Relu
from nettrain.layers.sigmoid import Sigmoid
from nettrain.layers.softmax import Softmax
from nettrain.layers.tanh import Tanh

ACTIVATIONS = {
    "linear": Linear,
    "sigmoid": Sigmoid,
    "tanh": Tanh,
    "relu": Relu,
    "softmax": Softmax,
}

LAYERS = {
    "dense": Dense,
    "conv2d": Conv2d,
    "maxpool2d": MaxPool2d,
    "dropout": Dropout,
    **ACTIVATIONS,
}

assert tuple(ACTIVATIONS) == ACTIVATION_NAMES

__all__ = ["ACTIVATIONS", "LAYERS", "Layer", "ShapeError"]
