"""BatchNorm1d/2d/3d with torch.nn's arguments, buffers and update rules."""
from __future__ import annotations

import numbers

import numpy as np

from ..functional import backward as B
from ..functional import extra as E
from . import init
from .conv import _dtype
from .module import Module, Parameter


class _BatchNorm(Module):
    _accepts_input_grad = True
    _dims = ()

    def _setup(self, num_features, eps, momentum, affine, track_running_stats, dtype, bias=True):
        if isinstance(num_features, bool) or not isinstance(num_features, numbers.Integral) or num_features < 1:
            raise ValueError(f"num_features must be a positive int, got {num_features!r}")
        self.num_features = int(num_features)
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        dt = _dtype(dtype)
        if affine:
            self.weight = Parameter(np.ones(self.num_features, dt))
            if bias:
                self.bias = Parameter(np.zeros(self.num_features, dt))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", np.zeros(self.num_features, dt))
            self.register_buffer("running_var", np.ones(self.num_features, dt))
            self.register_buffer("num_batches_tracked", np.array(0, dtype=np.int64))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_running_stats(self):
        if self.track_running_stats:
            self.running_mean[...] = 0
            self.running_var[...] = 1
            self.num_batches_tracked[...] = 0

    def reset_parameters(self):
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            if self.bias is not None:
                init.zeros_(self.bias)

    def forward(self, input):
        shape = np.shape(input)
        if len(shape) not in self._dims:
            want = " or ".join(f"{d}D" for d in self._dims)
            raise ValueError(f"{type(self).__name__} expected {want} input (got {len(shape)}D input)")
        if shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__}({self.num_features}) got an input with {shape[1]} "
                             f"channels (shape {tuple(shape)})")
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked += 1
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked)
        running_mean, running_var = self._get("running_mean"), self._get("running_var")
        use_batch = self.training or running_mean is None
        track = not self.training or self.track_running_stats
        y, mean, invstd = E._batch_norm(input, running_mean if track else None, running_var if track else None,
                                        self._get("weight"), self._get("bias"), use_batch, factor, self.eps, None)
        self._save(input=input, mean=mean, invstd=invstd, batch=use_batch)
        return y

    def backward(self, grad_output, input_grad=True):
        ctx = self._saved()
        gx, gw, gb = B.batch_norm_backward(
            grad_output, ctx["input"], None, None, self.weight, self.bias, training=ctx["batch"], eps=self.eps,
            save_mean=ctx["mean"], save_invstd=ctx["invstd"], output_mask=(input_grad, True, True))
        self._accumulate(self.weight, gw)
        self._accumulate(self.bias, gb)
        return gx

    def extra_repr(self):
        return ("{num_features}, eps={eps}, momentum={momentum}, affine={affine}, bias={use_bias}, "
                "track_running_stats={track_running_stats}".format(**self.__dict__, use_bias=self.bias is not None))


class BatchNorm1d(_BatchNorm):
    """Batch normalisation over (N, C) or (N, C, L)."""

    _dims = (2, 3)

    def __init__(self, num_features, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True, device=None,
                 dtype=None, *, bias=True):
        super().__init__()
        self._setup(num_features, eps, momentum, affine, track_running_stats, dtype, bias)


class BatchNorm2d(_BatchNorm):
    """Batch normalisation over (N, C, H, W)."""

    _dims = (4,)

    def __init__(self, num_features, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True, device=None,
                 dtype=None, *, bias=True):
        super().__init__()
        self._setup(num_features, eps, momentum, affine, track_running_stats, dtype, bias)


class BatchNorm3d(_BatchNorm):
    """Batch normalisation over (N, C, D, H, W)."""

    _dims = (5,)

    def __init__(self, num_features, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True, device=None,
                 dtype=None, *, bias=True):
        super().__init__()
        self._setup(num_features, eps, momentum, affine, track_running_stats, dtype, bias)
