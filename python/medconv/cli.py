"""The `medconv` command."""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def _ct_slice():
    """The CT slice that pydicom ships, in Hounsfield units."""
    from pydicom.data import get_testdata_file

    path = get_testdata_file("CT_small.dcm")
    from .dicom import read

    image = read(path)
    return path, image.pixels


def _timed(fn, *args, repeat=3, **kwargs):
    fn(*args, **kwargs)  # warm-up
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn(*args, **kwargs)
        best = min(best, time.perf_counter() - t0)
    return result, best * 1e3


def demo(args) -> int:
    import medconv as mc
    from . import filters
    from . import functional as F

    if args.threads:
        mc.set_num_threads(args.threads)
    info = mc.backend_info()
    print(f"medconv {mc.__version__}: {info['isa']} kernels, {info['num_threads']} threads "
          f"(CPU offers {', '.join(info['supported_isas'])})")
    path, hu = _ct_slice()
    print(f"\nCT slice {path.rsplit('/', 1)[-1]}: {hu.shape[0]}x{hu.shape[1]} pixels, "
          f"{hu.min():.0f} to {hu.max():.0f} HU, mean {hu.mean():.1f} HU")
    image = np.ascontiguousarray(hu, dtype=np.float32)

    print("\nClassic image kernels (medconv.filters, 'same' size, zero border):")
    print(f"  {'filter':<26}{'ms':>8}   {'output range (HU)':>24}")
    for name, fn in [
        ("edge_detect laplacian8", lambda im: filters.edge_detect(im)),
        ("edge_detect diagonal", lambda im: filters.edge_detect(im, "diagonal")),
        ("edge_detect vertical", lambda im: filters.edge_detect(im, "vertical")),
        ("edge_detect horizontal", lambda im: filters.edge_detect(im, "horizontal")),
        ("sharpen", filters.sharpen),
        ("box_blur", filters.box_blur),
        ("gaussian_blur 3x3", lambda im: filters.gaussian_blur(im, 3)),
        ("gaussian_blur 5x5", lambda im: filters.gaussian_blur(im, 5)),
        ("unsharp_mask 5x5", filters.unsharp_mask),
    ]:
        out, ms = _timed(fn, image)
        print(f"  {name:<26}{ms:>8.3f}   {out.min():>11.1f} .. {out.max():<11.1f}")

    names = [n for n in filters.KERNELS if n not in ("identity", "gaussian_blur5", "unsharp_mask5")]
    print(f"\nA convolution block: the {len(names)} classic 3x3 kernels as feature detectors, then ReLU and")
    print(f"2x2 max-pool, then a second seeded conv({len(names)} -> 16, 3x3) + ReLU + max-pool:")
    w1 = np.stack([filters.KERNELS[n] for n in names])[:, None].astype(np.float32)
    rng = np.random.default_rng(0)
    w2 = (rng.standard_normal((16, len(names), 3, 3)) / np.sqrt(9 * len(names))).astype(np.float32)
    x = ((image - image.mean()) / (image.std() + 1e-6))[None, None]

    def stack(x):
        h = F.conv2d(x, w1, padding=1, activation="relu")
        h = F.max_pool2d(h, 2)
        h = F.conv2d(h, w2, padding=1, activation="relu")
        return h, F.max_pool2d(h, 2)

    (h, y), ms = _timed(stack, x)
    print(f"  input {x.shape} -> conv+ReLU {(1, len(names)) + x.shape[2:]} -> max-pool -> conv+ReLU {h.shape} "
          f"-> max-pool {y.shape}")
    print(f"  {ms:.3f} ms for the stack; {np.count_nonzero(y) / y.size:.0%} of the final features are active")
    print("\nEverything above ran in medconv's C++ kernels; run `python benchmarks/compare.py` to compare with PyTorch.")
    return 0


def info(args) -> int:
    import medconv as mc

    for k, v in mc.backend_info().items():
        print(f"{k}: {v}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="medconv", description="Fast, exact CNN primitives for medical images.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="run the primitives on a real CT slice and time them")
    p.add_argument("--threads", type=int, default=None, help="kernel threads (default: all cores)")
    p.set_defaults(func=demo)
    p = sub.add_parser("info", help="show the kernels, ISA and threads in use")
    p.set_defaults(func=info)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
