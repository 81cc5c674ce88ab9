"""The benchmark set of shared/BENCHMARKS.md, used by compare.py and test_bench_ops.py: every shape,
how medconv and its peer are called on it, how much work one call is, and how close the two
results must be before a timing counts.

Everything is float32, NCHW / NCDHW contiguous, bias on, forward unless marked.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# ------------------------------------------------------------------------ convolutions


@dataclass(frozen=True)
class ConvCase:
    name: str
    label: str
    input: tuple          # (N, C, *spatial)
    out_channels: int
    kernel: int
    stride: int = 1
    padding: int = 0
    dilation: int = 1
    groups: int = 1

    @property
    def nd(self) -> int:
        return len(self.input) - 2

    @property
    def weight_shape(self) -> tuple:
        return (self.out_channels, self.input[1] // self.groups) + (self.kernel,) * self.nd

    @property
    def output_spatial(self) -> tuple:
        k = self.dilation * (self.kernel - 1) + 1
        return tuple((s + 2 * self.padding - k) // self.stride + 1 for s in self.input[2:])

    @property
    def flops(self) -> float:
        """2 * multiply-adds of one forward call (bias not counted)."""
        n, c = self.input[:2]
        taps = (c // self.groups) * self.kernel ** self.nd
        return 2.0 * n * self.out_channels * float(np.prod(self.output_spatial)) * taps

    def kwargs(self) -> dict:
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation, groups=self.groups)


CONVS = [
    ConvCase("S1", "ct-slice-filter", (1, 1, 512, 512), 1, 3, padding=1),
    ConvCase("S2", "first-layer", (8, 1, 256, 256), 32, 3, padding=1),
    ConvCase("S3", "mid-layer", (8, 64, 64, 64), 64, 3, padding=1),
    ConvCase("S4", "deep-layer", (8, 256, 16, 16), 256, 3, padding=1),
    ConvCase("S5", "strided", (8, 64, 128, 128), 128, 3, stride=2, padding=1),
    ConvCase("S6", "pointwise", (8, 128, 32, 32), 256, 1),
    ConvCase("S7", "depthwise", (8, 128, 64, 64), 128, 3, padding=1, groups=128),
    ConvCase("S8", "conv3d-ct", (1, 1, 64, 128, 128), 16, 3, padding=1),
    ConvCase("S9", "conv3d-mid", (2, 32, 32, 64, 64), 32, 3, padding=1),
    ConvCase("S10", "dilated", (8, 64, 64, 64), 64, 3, padding=2, dilation=2),
]
# Rows beyond the set, for paths users hit that the set does not: a segmentation network's last
# layer (1x1 to 2 classes), a 1D conv with many channels (ECG-like signals), a deep 3x3 layer on 7x7.
EXTRA_CONVS = [
    ConvCase("H1", "seg-head 1x1", (8, 64, 256, 256), 2, 1),
    ConvCase("C1", "conv1d k7", (16, 64, 2500), 64, 7, padding=3),
    ConvCase("D1", "deep 7x7", (8, 512, 7, 7), 512, 3, padding=1),
]
CONV_BY_NAME = {c.name: c for c in CONVS + EXTRA_CONVS}
BACKWARD = ["S3", "S8", "S5"]  # input + weight gradients: 2x the forward's flops (S5: beyond the set)


@dataclass(frozen=True)
class TransposedCase:
    """A transposed conv (U-Net decoders; beyond shared/BENCHMARKS.md's set): input, out channels,
    kernel, stride, padding, output padding."""
    name: str
    input: tuple
    out_channels: int
    kernel: int
    stride: int
    padding: int = 0
    output_padding: int = 0

    @property
    def nd(self) -> int:
        return len(self.input) - 2

    @property
    def flops(self) -> float:
        """2 * multiply-adds: every input value times every tap and output channel."""
        return 2.0 * float(np.prod(self.input)) * self.out_channels * self.kernel ** self.nd

    def kwargs(self) -> dict:
        return dict(stride=self.stride, padding=self.padding, output_padding=self.output_padding)

    def data(self, seed: int = 0):
        rng = np.random.default_rng(seed)
        x = rng.standard_normal(self.input, dtype=np.float32)
        w = rng.standard_normal((self.input[1], self.out_channels) + (self.kernel,) * self.nd, dtype=np.float32)
        w = (w / np.sqrt(self.input[1] * self.kernel ** self.nd)).astype(np.float32)
        return x, w, rng.standard_normal(self.out_channels, dtype=np.float32)


# Rows beyond the set: these convs again in float64, numpy's default dtype (compare.py run_float64).
FLOAT64 = ["S3", "S6"]

TRANSPOSED = [
    TransposedCase("U1 up 2x2 s2", (8, 64, 64, 64), 32, 2, 2),
    TransposedCase("U2 up 3x3 s2", (8, 64, 64, 64), 32, 3, 2, padding=1, output_padding=1),
    TransposedCase("U3 up 2x2x2 s2 3D", (1, 32, 32, 64, 64), 16, 2, 2),
]

# results may differ by the summation order and by fast algorithms (Winograd): |a - b| <= this * max|b|
CONV_TOLERANCE = 2e-4


def conv_data(case: ConvCase, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(case.input, dtype=np.float32)
    fan_in = case.weight_shape[1] * case.kernel ** case.nd
    w = (rng.standard_normal(case.weight_shape, dtype=np.float32) / np.sqrt(fan_in)).astype(np.float32)
    b = rng.standard_normal(case.out_channels, dtype=np.float32)
    return x, w, b


def medconv_conv(case: ConvCase):
    import medconv.functional as F

    return getattr(F, f"conv{case.nd}d")


def medconv_conv_backward(nd: int):
    """medconv's conv{nd}d_backward (grad_output, input, weight, bias, ..., output_mask), or None
    when this build has none (looked up in medconv.functional, then its backward module)."""
    import medconv.functional as F

    fn = getattr(F, f"conv{nd}d_backward", None)
    if fn is None:
        try:
            from medconv.functional import backward
        except ImportError:
            return None
        fn = getattr(backward, f"conv{nd}d_backward", None)
    return fn


def torch_conv(case: ConvCase):
    import torch.nn.functional as TF

    return getattr(TF, f"conv{case.nd}d")


# ------------------------------------------------------------------------ memory-bound ops

ACT_SHAPE = (8, 64, 128, 128)
POOL3D_SHAPE = (1, 16, 64, 128, 128)
SOFTMAX_SHAPE = (4096, 1000)


@dataclass(frozen=True)
class MemCase:
    """An out-of-place op: medconv(x, out=None) and torch(t) give the same array; `exact` asks
    for equal values, else allclose(rtol, atol)."""
    name: str
    shape: tuple
    op: str
    params: dict = field(default_factory=dict)
    exact: bool = False
    rtol: float = 1e-5
    atol: float = 1e-6

    def output_shape(self) -> tuple:
        s = self.shape
        if self.op == "max_pool2d" or self.op == "avg_pool2d":
            return s[:2] + tuple(v // 2 for v in s[2:])
        if self.op == "max_pool3d":
            return s[:2] + tuple(v // 2 for v in s[2:])
        if self.op == "pad":
            return s[:2] + tuple(v + 2 for v in s[2:])
        if self.op == "adaptive_avg_pool2d":
            return s[:2] + (1, 1)
        return s

    @property
    def bytes(self) -> float:
        """Bytes one call must move at least: the input read once, the output written once."""
        return 4.0 * (np.prod(self.shape) + np.prod(self.output_shape()))

    def medconv(self):
        """f(x, out=None) -> medconv's result."""
        import medconv.functional as F

        p = self.params
        if self.op in ("max_pool2d", "avg_pool2d", "max_pool3d"):
            f = getattr(F, self.op)
            return lambda x, out=None: f(x, p["kernel"], p["stride"], out=out)
        if self.op == "pad":
            return lambda x, out=None: F.pad(x, (1, 1, 1, 1), mode=p["mode"], out=out)
        if self.op == "leaky_relu":
            return lambda x, out=None: F.leaky_relu(x, 0.01, out=out)
        if self.op == "adaptive_avg_pool2d":
            return lambda x, out=None: F.adaptive_avg_pool2d(x, 1, out=out)
        if self.op in ("softmax", "log_softmax"):
            f = getattr(F, self.op)
            return lambda x, out=None: f(x, p["dim"], out=out)
        f = getattr(F, self.op)
        return lambda x, out=None: f(x, out=out)

    def torch(self):
        """f(tensor) -> torch's result (a tensor)."""
        import torch
        import torch.nn.functional as TF

        p = self.params
        if self.op in ("max_pool2d", "avg_pool2d", "max_pool3d"):
            f = getattr(TF, self.op)
            return lambda t: f(t, p["kernel"], p["stride"])
        if self.op == "pad":
            return lambda t: TF.pad(t, (1, 1, 1, 1), mode=p["mode"])
        if self.op == "leaky_relu":
            return lambda t: TF.leaky_relu(t, 0.01)
        if self.op == "adaptive_avg_pool2d":
            return lambda t: TF.adaptive_avg_pool2d(t, 1)
        if self.op in ("softmax", "log_softmax"):
            f = getattr(torch, self.op)
            return lambda t: f(t, p["dim"])
        if self.op in ("sigmoid", "tanh"):
            return getattr(torch, self.op)
        return getattr(TF, self.op)

    def data(self, seed: int = 0):
        rng = np.random.default_rng(seed)
        scale = 4.0 if self.op in ("softmax", "log_softmax") else 2.0
        return (rng.standard_normal(self.shape, dtype=np.float32) * scale).astype(np.float32)


MEMORY_BOUND = [
    MemCase("max_pool2d 2x2 s2", ACT_SHAPE, "max_pool2d", {"kernel": 2, "stride": 2}, exact=True),
    MemCase("avg_pool2d 2x2 s2", ACT_SHAPE, "avg_pool2d", {"kernel": 2, "stride": 2}, rtol=1e-6),
    MemCase("relu", ACT_SHAPE, "relu", exact=True),
    MemCase("leaky_relu", ACT_SHAPE, "leaky_relu", rtol=1e-6, atol=0.0),
    MemCase("elu", ACT_SHAPE, "elu"),
    MemCase("sigmoid", ACT_SHAPE, "sigmoid"),
    MemCase("tanh", ACT_SHAPE, "tanh"),
    # torch 2.13's AVX-512 gelu is off by up to 1.2e-6 absolute (and flushes x < -5.9 to 0)
    MemCase("gelu", ACT_SHAPE, "gelu", atol=2e-6),
    MemCase("pad reflect 1", ACT_SHAPE, "pad", {"mode": "reflect"}, exact=True),
    MemCase("pad constant 1", ACT_SHAPE, "pad", {"mode": "constant"}, exact=True),
    MemCase("max_pool3d 2 s2", POOL3D_SHAPE, "max_pool3d", {"kernel": 2, "stride": 2}, exact=True),
    MemCase("softmax dim=1", SOFTMAX_SHAPE, "softmax", {"dim": 1}, rtol=1e-5, atol=1e-9),
    MemCase("log_softmax dim=1", SOFTMAX_SHAPE, "log_softmax", {"dim": 1}, rtol=1e-5, atol=1e-5),
]
# Beyond the set: softmax over the channels of a segmentation output (dim 1 of NCHW), and a global
# average pool (classifier and squeeze-excitation heads).
SEG_SHAPE = (8, 4, 256, 256)
EXTRA_MEMORY_BOUND = [
    MemCase("softmax channels", SEG_SHAPE, "softmax", {"dim": 1}, rtol=1e-5, atol=1e-9),
    MemCase("log_softmax channels", SEG_SHAPE, "log_softmax", {"dim": 1}, rtol=1e-5, atol=1e-5),
    MemCase("global avg pool", ACT_SHAPE, "adaptive_avg_pool2d", rtol=1e-5, atol=1e-6),
]
MEM_BY_NAME = {c.name: c for c in MEMORY_BOUND + EXTRA_MEMORY_BOUND}

# ------------------------------------------------------------------------ image filters

FILTER_IMAGE = (512, 512)
FILTER_SIZES = [3, 5]
FILTER_PEERS = ["scipy.ndimage.correlate", "cv2.filter2D"]


def filter_data(size: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    img = rng.random(FILTER_IMAGE, dtype=np.float32) * 1000.0  # CT-like range
    k = rng.standard_normal((size, size)).astype(np.float32)
    return img, k


def filter_flops(size: int) -> float:
    return 2.0 * FILTER_IMAGE[0] * FILTER_IMAGE[1] * size * size


def medconv_filter():
    import medconv.filters

    return lambda img, k: medconv.filters.apply(img, k, border="zeros")


def peer_filter(peer: str):
    """The peer's zero-border 'same' correlation, or None when the package is not installed."""
    if peer == "scipy.ndimage.correlate":
        try:
            import scipy.ndimage as ndi
        except ImportError:
            return None
        return lambda img, k: ndi.correlate(img, k, mode="constant", cval=0.0)
    try:
        import cv2
    except ImportError:
        return None
    return lambda img, k: cv2.filter2D(img, -1, k, borderType=cv2.BORDER_CONSTANT)


# ------------------------------------------------------------------------ small CNN

CNN_INPUT = (16, 1, 256, 256)
CNN_CHANNELS = [(1, 32), (32, 64), (64, 128)]  # conv 3x3 pad 1 + ReLU + max_pool 2, three times
CNN_FEATURES = 128 * 32 * 32                   # flatten -> linear(131072 -> 2) -> softmax
CNN_CLASSES = 2


def cnn_params(seed: int = 0):
    """[(w, b) per conv] + [(w, b) of the linear layer], torch's default init scale."""
    rng = np.random.default_rng(seed)
    params = []
    for cin, cout in CNN_CHANNELS:
        bound = 1.0 / np.sqrt(cin * 9)
        params.append((rng.uniform(-bound, bound, (cout, cin, 3, 3)).astype(np.float32),
                       rng.uniform(-bound, bound, cout).astype(np.float32)))
    bound = 1.0 / np.sqrt(CNN_FEATURES)
    params.append((rng.uniform(-bound, bound, (CNN_CLASSES, CNN_FEATURES)).astype(np.float32),
                   rng.uniform(-bound, bound, CNN_CLASSES).astype(np.float32)))
    return params


def cnn_data(seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(CNN_INPUT, dtype=np.float32)
    target = rng.integers(0, CNN_CLASSES, CNN_INPUT[0]).astype(np.int64)
    return x, target


def cnn_flops() -> float:
    flops, hw = 0.0, CNN_INPUT[2]
    for cin, cout in CNN_CHANNELS:
        flops += 2.0 * CNN_INPUT[0] * cout * hw * hw * cin * 9
        hw //= 2
    return flops + 2.0 * CNN_INPUT[0] * CNN_FEATURES * CNN_CLASSES


def medconv_cnn_forward(params):
    import medconv.functional as F

    def forward(x):
        h = x
        for w, b in params[:-1]:
            h = F.max_pool2d(F.relu(F.conv2d(h, w, b, padding=1)), 2)
        w, b = params[-1]
        return F.softmax(F.linear(h.reshape(h.shape[0], -1), w, b), dim=1)

    return forward


def torch_cnn_forward(params):
    import torch
    import torch.nn.functional as TF

    tp = [(torch.from_numpy(w), torch.from_numpy(b)) for w, b in params]

    def forward(t):
        with torch.no_grad():
            h = t
            for w, b in tp[:-1]:
                h = TF.max_pool2d(TF.relu(TF.conv2d(h, w, b, padding=1)), 2)
            w, b = tp[-1]
            return torch.softmax(TF.linear(h.reshape(h.shape[0], -1), w, b), dim=1)

    return forward


def torch_cnn_module(params):
    import torch

    layers = []
    for cin, cout in CNN_CHANNELS:
        layers += [torch.nn.Conv2d(cin, cout, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2)]
    layers += [torch.nn.Flatten(), torch.nn.Linear(CNN_FEATURES, CNN_CLASSES)]
    model = torch.nn.Sequential(*layers)
    convs = [m for m in model if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        for m, (w, b) in zip(convs, params):
            m.weight.copy_(torch.from_numpy(w))
            m.bias.copy_(torch.from_numpy(b))
    return model


def medconv_cnn_module(params):
    """The same network as a medconv.nn model, or None when medconv.nn (or its training pieces)
    is not available in this build."""
    try:
        import medconv.nn as mnn
    except ImportError:
        return None
    needed = ("Sequential", "Conv2d", "ReLU", "MaxPool2d", "Flatten", "Linear", "CrossEntropyLoss")
    if not all(hasattr(mnn, n) for n in needed):
        return None
    layers = []
    for cin, cout in CNN_CHANNELS:
        layers += [mnn.Conv2d(cin, cout, 3, padding=1), mnn.ReLU(), mnn.MaxPool2d(2)]
    layers += [mnn.Flatten(), mnn.Linear(CNN_FEATURES, CNN_CLASSES)]
    model = mnn.Sequential(*layers)
    state = {}
    index = 0
    for i, m in enumerate(model):
        if isinstance(m, (mnn.Conv2d, mnn.Linear)):
            state[f"{i}.weight"], state[f"{i}.bias"] = params[index]
            index += 1
    model.load_state_dict(state)
    return model


# ------------------------------------------------------------------------ small calls (beyond the set)

def small_calls():
    """[(name, medconv call, torch call)] on tiny inputs, where the per-call overhead is the whole
    cost: a patch classifier's layers at batch 1. Each call returns an array / tensor to check."""
    import torch
    import torch.nn.functional as TF

    import medconv.functional as F

    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 4, 8, 8), dtype=np.float32)
    w = rng.standard_normal((4, 4, 3, 3), dtype=np.float32)
    b = rng.standard_normal(4, dtype=np.float32)
    rv = rng.uniform(0.5, 2.0, 4).astype(np.float32)
    xl = rng.standard_normal((4, 16), dtype=np.float32)
    wl = rng.standard_normal((8, 16), dtype=np.float32)
    bl = rng.standard_normal(8, dtype=np.float32)
    tx, tw, tb, trv, txl, twl, tbl = map(torch.from_numpy, (x, w, b, rv, xl, wl, bl))
    return [
        ("conv2d 3x3 1x4x8x8", lambda: F.conv2d(x, w, b, padding=1), lambda: TF.conv2d(tx, tw, tb, padding=1)),
        ("conv_transpose2d 3x3 s2 1x4x8x8", lambda: F.conv_transpose2d(x, w, b, stride=2),
         lambda: TF.conv_transpose2d(tx, tw, tb, stride=2)),
        ("max_pool2d 2 1x4x8x8", lambda: F.max_pool2d(x, 2), lambda: TF.max_pool2d(tx, 2)),
        ("avg_pool2d 2 1x4x8x8", lambda: F.avg_pool2d(x, 2), lambda: TF.avg_pool2d(tx, 2)),
        ("relu 1x4x8x8", lambda: F.relu(x), lambda: TF.relu(tx)),
        ("softmax dim=1 1x4x8x8", lambda: F.softmax(x, 1), lambda: torch.softmax(tx, 1)),
        ("batch_norm eval 1x4x8x8", lambda: F.batch_norm(x, b, rv, b, b, training=False),
         lambda: TF.batch_norm(tx, tb, trv, tb, tb, training=False)),
        ("linear 4x16 -> 8", lambda: F.linear(xl, wl, bl), lambda: TF.linear(txl, twl, tbl)),
    ]


DIGITS_INPUT = (1, 1, 8, 8)  # one scikit-learn digit


def torch_digits_module():
    """A 10-layer classifier of 8x8 images (conv, batch norm, ReLU, max-pool twice; linear)."""
    import torch

    torch.manual_seed(0)
    nn = torch.nn
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(32 * 2 * 2, 10))
