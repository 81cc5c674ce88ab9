"""medconv.nn: layers, containers, losses, initialisation, training, save/load and PyTorch import,
with torch.nn's class names, argument names, defaults and state-dict keys."""
from . import init
from .activation import ELU, GELU, LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from .conv import Conv1d, Conv2d, Conv3d, ConvTranspose1d, ConvTranspose2d, ConvTranspose3d
from .convert import from_torch
from .init import manual_seed
from .linear import Dropout, Flatten, Identity, Linear, Unflatten, Upsample
from .loss import BCEWithLogitsLoss, CrossEntropyLoss, DiceLoss, MSELoss
from .module import Module, ModuleList, Parameter, Residual, Sequential, SkipConcat, is_grad_enabled, no_grad
from .normalization import BatchNorm1d, BatchNorm2d, BatchNorm3d
from .pooling import (
    AdaptiveAvgPool1d, AdaptiveAvgPool2d, AdaptiveAvgPool3d, AvgPool1d, AvgPool2d, AvgPool3d, MaxPool1d, MaxPool2d,
    MaxPool3d,
)
from .serialization import load, load_preprocess, register, save
from .training import fit, predict, predict_proba

_LAYERS = (
    Conv1d, Conv2d, Conv3d, ConvTranspose1d, ConvTranspose2d, ConvTranspose3d,
    MaxPool1d, MaxPool2d, MaxPool3d, AvgPool1d, AvgPool2d, AvgPool3d,
    AdaptiveAvgPool1d, AdaptiveAvgPool2d, AdaptiveAvgPool3d,
    BatchNorm1d, BatchNorm2d, BatchNorm3d, Dropout,
    ReLU, LeakyReLU, ELU, GELU, Sigmoid, Tanh, Softmax, LogSoftmax,
    Flatten, Unflatten, Linear, Upsample, Identity,
    Sequential, ModuleList, Residual, SkipConcat,
    CrossEntropyLoss, BCEWithLogitsLoss, MSELoss, DiceLoss,
)


def _all_modules():
    """The classes save/load and from_torch may build."""
    return _LAYERS


__all__ = [cls.__name__ for cls in _LAYERS] + [
    "Module", "Parameter", "init", "manual_seed", "no_grad", "is_grad_enabled",
    "save", "load", "load_preprocess", "register", "from_torch", "fit", "predict", "predict_proba",
]
