"""torch.nn.functional-compatible ops: validation, output shapes and dispatch to medconv's kernels."""
from .backward import (
    adaptive_avg_pool1d_backward, adaptive_avg_pool2d_backward, adaptive_avg_pool3d_backward,
    avg_pool1d_backward, avg_pool2d_backward, avg_pool3d_backward, batch_norm_backward,
    conv1d_backward, conv2d_backward, conv3d_backward, conv_transpose1d_backward, conv_transpose2d_backward,
    conv_transpose3d_backward, dropout_backward, elu_backward, gelu_backward, interpolate_backward,
    leaky_relu_backward, linear_backward, log_softmax_backward, max_pool1d_backward, max_pool2d_backward,
    max_pool3d_backward, maxout_backward, pad_backward, relu_backward, sigmoid_backward, softmax_backward,
    tanh_backward,
)
from .extra import (
    batch_norm, conv_transpose1d, conv_transpose2d, conv_transpose3d, dropout, interpolate, native_dropout, upsample,
)
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
    "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "interpolate", "upsample", "batch_norm",
    "dropout", "native_dropout",
    "adaptive_avg_pool1d_backward", "adaptive_avg_pool2d_backward", "adaptive_avg_pool3d_backward",
    "avg_pool1d_backward", "avg_pool2d_backward", "avg_pool3d_backward", "batch_norm_backward",
    "conv1d_backward", "conv2d_backward", "conv3d_backward", "conv_transpose1d_backward",
    "conv_transpose2d_backward", "conv_transpose3d_backward", "dropout_backward", "elu_backward",
    "gelu_backward", "interpolate_backward", "leaky_relu_backward", "linear_backward", "log_softmax_backward",
    "max_pool1d_backward", "max_pool2d_backward", "max_pool3d_backward", "maxout_backward", "pad_backward",
    "relu_backward", "sigmoid_backward", "softmax_backward", "tanh_backward",
]
