"""The classic image kernels, each one convolution over a single-channel image (H, W) or a
batch (N, H, W). As in CNNs, "convolution" is cross-correlation (the kernel is not flipped)."""
from __future__ import annotations

import numpy as np

from . import _core
from . import functional as F
from ._backend import as_array, wrap

KERNELS: dict[str, np.ndarray] = {
    "identity": np.array([[0, 0, 0], [0, 1, 0], [0, 0, 0]], dtype=np.float64),
    "edge_diagonal": np.array([[1, 0, -1], [0, 0, 0], [-1, 0, 1]], dtype=np.float64),
    "edge_laplacian4": np.array([[0, -1, 0], [-1, 4, -1], [0, -1, 0]], dtype=np.float64),
    "edge_laplacian8": np.array([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]], dtype=np.float64),
    "edge_vertical": np.array([[1, 0, -1], [1, 0, -1], [1, 0, -1]], dtype=np.float64),
    "edge_horizontal": np.array([[1, 1, 1], [0, 0, 0], [-1, -1, -1]], dtype=np.float64),
    "sharpen": np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], dtype=np.float64),
    "box_blur": np.full((3, 3), 1.0 / 9.0),
    "gaussian_blur3": np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], dtype=np.float64) / 16.0,
    "gaussian_blur5": np.array(
        [[1, 4, 6, 4, 1], [4, 16, 24, 16, 4], [6, 24, 36, 24, 6], [4, 16, 24, 16, 4], [1, 4, 6, 4, 1]],
        dtype=np.float64) / 256.0,
    "unsharp_mask5": np.array(
        [[1, 4, 6, 4, 1], [4, 16, 24, 16, 4], [6, 24, -476, 24, 6], [4, 16, 24, 16, 4], [1, 4, 6, 4, 1]],
        dtype=np.float64) / -256.0,
}
for _k in KERNELS.values():
    _k.setflags(write=False)

EDGE_VARIANTS = ("laplacian8", "laplacian4", "diagonal", "vertical", "horizontal")
BORDERS = ("zeros", "reflect", "replicate", "circular")


_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _apply_zeros_fast(x: np.ndarray, kernel: np.ndarray):
    """apply() with a zero border on a contiguous float numpy image and a 2D numpy kernel of odd
    sizes, straight to the convolution kernel (what conv2d would check, checked here in a few
    attribute reads: a 512x512 filter call is ~0.15 ms, of which Python was 20 us); None when the
    arguments need apply()'s full checks."""
    if x.ndim not in (2, 3) or x.dtype not in _FLOAT_DTYPES or not x.flags.c_contiguous or x.size == 0:
        return None
    if kernel.ndim != 2 or kernel.shape[0] % 2 == 0 or kernel.shape[1] % 2 == 0:
        return None
    k = kernel if kernel.dtype == x.dtype and kernel.flags.c_contiguous else np.ascontiguousarray(kernel, x.dtype)
    kh, kw = k.shape
    h, w = x.shape[-2:]
    y = _core.empty(x.shape, x.dtype)
    _core.conv_forward(x.reshape(-1, 1, 1, h, w), k.reshape(1, 1, 1, kh, kw), None, y.reshape(-1, 1, 1, h, w),
                       (1, 1, 1), (0, kh // 2, kw // 2), (1, 1, 1), 1, 0)
    return y


def apply(image, kernel, border: str = "zeros"):
    """Convolves a (H, W) image or an (N, H, W) stack with a 2D kernel, keeping the size
    ('same' padding); border is how the outside is filled: zeros, reflect, replicate, circular."""
    if border == "zeros" and type(image) is np.ndarray and type(kernel) is np.ndarray:
        y = _apply_zeros_fast(image, kernel)
        if y is not None:
            return y
    x, src = as_array(image, "image")
    if x.ndim not in (2, 3):
        raise ValueError(f"image must be 2D (H, W) or 3D (N, H, W), got shape {tuple(x.shape)}")
    k = np.asarray(kernel, dtype=x.dtype)
    if k.ndim != 2 or k.shape[0] % 2 == 0 or k.shape[1] % 2 == 0:
        raise ValueError(f"kernel must be a 2D array with odd sizes, got shape {k.shape}")
    if border not in BORDERS:
        raise ValueError(f"border must be one of {set(BORDERS)}, got {border!r}")
    batch = x.reshape((-1, 1) + x.shape[-2:])
    y = F.conv2d(batch, np.ascontiguousarray(k[None, None]), padding="same", padding_mode=border)
    return wrap(y.reshape(x.shape), src)


def edge_detect(image, variant: str = "laplacian8", border: str = "zeros"):
    """Edges: 'laplacian8' [[-1,-1,-1],[-1,8,-1],[-1,-1,-1]], 'laplacian4', 'diagonal'
    [[1,0,-1],[0,0,0],[-1,0,1]], 'vertical' [[1,0,-1]]*3 or 'horizontal' (its transpose)."""
    if variant not in EDGE_VARIANTS:
        raise ValueError(f"variant must be one of {set(EDGE_VARIANTS)}, got {variant!r}")
    return apply(image, KERNELS["edge_" + variant], border)


def sharpen(image, border: str = "zeros"):
    """[[0,-1,0],[-1,5,-1],[0,-1,0]]."""
    return apply(image, KERNELS["sharpen"], border)


def box_blur(image, border: str = "zeros"):
    """The 3x3 mean."""
    return apply(image, KERNELS["box_blur"], border)


def gaussian_blur(image, size: int = 3, border: str = "zeros"):
    """The binomial 3x3 (1/16) or 5x5 (1/256) Gaussian."""
    if size not in (3, 5):
        raise ValueError(f"size must be 3 or 5, got {size!r}")
    return apply(image, KERNELS[f"gaussian_blur{size}"], border)


def unsharp_mask(image, border: str = "zeros"):
    """The 5x5 unsharp mask: 2*image - gaussian_blur5(image), as one kernel."""
    return apply(image, KERNELS["unsharp_mask5"], border)
