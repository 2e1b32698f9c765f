"""The layer table: YAML `type` -> layer class. A layer's facts (options, fusions, output range,
ONNX and PyTorch forms) are on its class, in its own file (nettrain.layers.base). Adding a layer
(docs/adding-a-layer.md) = its file + one entry here + its block in tests/test_layer_table.py,
which fails for a layer it has no reference for, + its export case and its documented options."""

from nettrain.layers.add import Add
from nettrain.layers.avgpool2d import AvgPool2d
from nettrain.layers.base import ACTIVATION_NAMES, Layer, ShapeError
from nettrain.layers.batchnorm import BatchNorm
from nettrain.layers.concat import Concat
from nettrain.layers.conv1d import Conv1d
from nettrain.layers.conv2d.layer import Conv2d
from nettrain.layers.dense import Dense
from nettrain.layers.dropout import Dropout
from nettrain.layers.global_avgpool2d import GlobalAvgPool2d
from nettrain.layers.leaky_relu import LeakyRelu
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
    "leaky_relu": LeakyRelu,
}

LAYERS = {
    "dense": Dense,
    "conv1d": Conv1d,
    "conv2d": Conv2d,
    "maxpool2d": MaxPool2d,
    "avgpool2d": AvgPool2d,
    "global_avgpool2d": GlobalAvgPool2d,
    "batchnorm": BatchNorm,
    "dropout": Dropout,
    "add": Add,
    "concat": Concat,
    **ACTIVATIONS,
}

assert tuple(ACTIVATIONS) == ACTIVATION_NAMES

__all__ = ["ACTIVATIONS", "LAYERS", "Layer", "ShapeError"]
