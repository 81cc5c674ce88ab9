"""torch.nn.functional-compatible ops: validation, output shapes and dispatch to medconv's kernels."""
from .activation import elu, gelu, leaky_relu, linear, log_softmax, maxout, relu, sigmoid, softmax, tanh
from .conv import conv1d, conv2d, conv3d
from .pad import pad
from .pool import (
    adaptive_avg_pool1d,
    adaptive_avg_pool2d,
    adaptive_avg_pool3d,
    avg_pool1d,
    avg_pool2d,
    avg_pool3d,
    max_pool1d,
    max_pool2d,
    max_pool3d,
)

__all__ = [
    "conv1d", "conv2d", "conv3d", "pad",
    "max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d",
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
    "relu", "leaky_relu", "elu", "sigmoid", "tanh", "gelu", "softmax", "log_softmax", "maxout", "linear",
]
