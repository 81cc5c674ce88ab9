"""medconv's CUDA kernels beside PyTorch's (cuDNN) on the same GPU, for the shapes of BENCHMARKS.md.

    python benchmarks/bench_gpu.py [--quick] [--tf32] [--out benchmarks/results/gpu-<device>.md]

Each row is checked first (medconv against torch, same inputs), then timed: the median of
`--repeats` batches of back-to-back calls, each batch between two device synchronisations.
Rows: case, shape, medconv ms, torch ms, ratio (torch time / medconv time, > 1: medconv faster),
and GFLOP/s (convs) or GB/s (memory-bound ops) for medconv. cuDNN's TF32 is off unless --tf32
(medconv computes in full float32). Without CuPy, torch with CUDA, or a GPU, it says so and
exits 0.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

# (name, input shape, out channels, kernel, kwargs) -- BENCHMARKS.md's shape set
CONVS = [
    ("S1 ct-slice-filter", (1, 1, 512, 512), 1, 3, dict(padding=1)),
    ("S2 first-layer", (8, 1, 256, 256), 32, 3, dict(padding=1)),
    ("S3 mid-layer", (8, 64, 64, 64), 64, 3, dict(padding=1)),
    ("S4 deep-layer", (8, 256, 16, 16), 256, 3, dict(padding=1)),
    ("S5 strided", (8, 64, 128, 128), 128, 3, dict(stride=2, padding=1)),
    ("S6 pointwise", (8, 128, 32, 32), 256, 1, {}),
    ("S7 depthwise", (8, 128, 64, 64), 128, 3, dict(padding=1, groups=128)),
    ("S8 conv3d-ct", (1, 1, 64, 128, 128), 16, 3, dict(padding=1)),
    ("S9 conv3d-mid", (2, 32, 32, 64, 64), 32, 3, dict(padding=1)),
    ("S10 dilated", (8, 64, 64, 64), 64, 3, dict(dilation=2, padding=2)),
]
BACKWARD = ("S3 mid-layer", "S8 conv3d-ct")
MEMORY_SHAPE = (8, 64, 128, 128)


def unavailable() -> str | None:
    try:
        import cupy
    except Exception as exc:
        return f"CuPy is not importable ({exc}): pip install 'medconv[cuda]'"
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return "no CUDA device"
    except Exception as exc:
        return f"no CUDA device ({exc})"
    try:
        import torch
    except ImportError:
        return "torch is not installed (the peer): pip install torch"
    if not torch.cuda.is_available():
        return "torch has no CUDA (install a CUDA build of torch for the peer)"
    return None


def timed(fn, sync, repeats, min_seconds=0.05):
    """Median ms per call over `repeats` batches, the batch size chosen so a batch lasts min_seconds."""
    fn()
    sync()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < min_seconds:
        fn()
        n += 1
        sync()
    per = (time.perf_counter() - t0) / n
    batch = max(1, int(min_seconds / max(per, 1e-7)))
    samples = []
    for _ in range(repeats):
        sync()
        t = time.perf_counter()
        for _ in range(batch):
            fn()
        sync()
        samples.append((time.perf_counter() - t) * 1e3 / batch)
    return statistics.median(samples)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats and only a few shapes")
    ap.add_argument("--tf32", action="store_true", help="let cuDNN use TF32 tensor cores (off by default)")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--out", help="also write the table (markdown) to this file")
    args = ap.parse_args(argv)
    why = unavailable()
    if why:
        print(f"bench_gpu: skipped: {why}")
        return 0

    import cupy as cp
    import torch
    import torch.nn.functional as TF

    import medconv
    import medconv.functional.backward as B
    import medconv.functional as F

    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = bool(args.tf32)
    torch.backends.cuda.matmul.allow_tf32 = bool(args.tf32)
    repeats = 3 if args.quick else args.repeats
    dev = medconv.backend_info()["gpu"]["devices"][cp.cuda.Device().id]
    rng = np.random.default_rng(0)
    rows = []
    mismatches = []

    def both(a):
        return cp.asarray(a), torch.from_numpy(a).cuda()

    def check(name, got, want, rtol=1e-3):
        got = cp.asnumpy(got).astype(np.float64)
        want = want.detach().cpu().numpy().astype(np.float64)
        scale = max(1e-30, float(np.abs(want).max()))
        err = float(np.abs(got - want).max()) / scale
        if not np.isfinite(err) or err > rtol:
            mismatches.append(f"{name}: medconv and torch differ (max error {err:.2e} of max |value|)")
            print(f"bench_gpu: MISMATCH {mismatches[-1]}", flush=True)

    def failed(name, exc):
        mismatches.append(f"{name}: {type(exc).__name__}: {exc}")
        print(f"bench_gpu: FAILED {mismatches[-1]}", flush=True)

    def row(name, shape, f_mc, f_t, work, unit):
        ms = timed(f_mc, cp.cuda.Device().synchronize, repeats)
        ms_t = timed(f_t, torch.cuda.synchronize, repeats)
        rate = work / (ms * 1e-3) / 1e9
        rows.append((name, "x".join(map(str, shape)), ms, ms_t, ms_t / ms, f"{rate:.1f} {unit}"))
        print(f"{name:28s} {rows[-1][1]:18s} medconv {ms:9.3f} ms  torch {ms_t:9.3f} ms  ratio {ms_t / ms:5.2f}  "
              f"{rows[-1][5]}", flush=True)

    convs = CONVS[:3] + CONVS[6:8] if args.quick else CONVS
    for name, shape, oc, k, kw in convs:
        try:
            nd = len(shape) - 2
            groups = kw.get("groups", 1)
            x = rng.standard_normal(shape, dtype=np.float32)
            w = (rng.standard_normal((oc, shape[1] // groups) + (k,) * nd) / np.sqrt(shape[1] // groups * k**nd)).astype(np.float32)
            b = rng.standard_normal(oc).astype(np.float32)
            (xc, xt), (wc, wt), (bc, bt) = both(x), both(w), both(b)
            f = getattr(F, f"conv{nd}d")
            tf = getattr(TF, f"conv{nd}d")
            y = f(xc, wc, bc, **kw)
            yt = tf(xt, wt, bt, **kw)
            check(name, y, yt)
            flops = 2.0 * y.size * (shape[1] // groups) * k**nd
            row(name, shape, lambda: f(xc, wc, bc, **kw), lambda: tf(xt, wt, bt, **kw), flops, "GFLOP/s")
            if name in BACKWARD:
                gy = rng.standard_normal(y.shape, dtype=np.float32)
                gyc, gyt = both(gy)
                conv_bwd = getattr(B, f"conv{nd}d_backward")

                def bwd():  # input and weight gradients
                    return conv_bwd(gyc, xc, wc, None, output_mask=(True, True, False), **kw)

                gx, gw, _ = bwd()
                xr, wr = xt.clone().requires_grad_(), wt.clone().requires_grad_()
                tf(xr, wr, None, **kw).backward(gyt)
                check(name + " grad_input", gx, xr.grad)
                check(name + " grad_weight", gw, wr.grad)

                st, pd, dl = ([kw.get(key, default)] * nd for key, default in (("stride", 1), ("padding", 0), ("dilation", 1)))

                def torch_bwd():  # input and weight gradients, as medconv's call computes
                    torch.ops.aten.convolution_backward(gyt, xt, wt, None, st, pd, dl, False, [0] * nd, groups,
                                                        [True, True, False])

                row(name + " backward", shape, bwd, torch_bwd, 2 * flops, "GFLOP/s")
        except Exception as exc:  # a kernel that fails is reported, and the other rows still run
            failed(name, exc)

    x = rng.standard_normal(MEMORY_SHAPE, dtype=np.float32)
    xc, xt = both(x)
    nbytes = x.nbytes
    memory_ops = [
        ("max_pool2d 2x2 s2", lambda a: F.max_pool2d(a, 2, 2), lambda t: TF.max_pool2d(t, 2, 2), 1.25),
        ("avg_pool2d 2x2 s2", lambda a: F.avg_pool2d(a, 2, 2), lambda t: TF.avg_pool2d(t, 2, 2), 1.25),
        ("relu", F.relu, TF.relu, 2.0),
        ("leaky_relu", F.leaky_relu, TF.leaky_relu, 2.0),
        ("elu", F.elu, TF.elu, 2.0),
        ("sigmoid", F.sigmoid, torch.sigmoid, 2.0),
        ("tanh", F.tanh, torch.tanh, 2.0),
        ("pad reflect 1", lambda a: F.pad(a, (1, 1, 1, 1), mode="reflect"),
         lambda t: TF.pad(t, (1, 1, 1, 1), mode="reflect"), 2.0),
        ("pad constant 1", lambda a: F.pad(a, (1, 1, 1, 1)), lambda t: TF.pad(t, (1, 1, 1, 1)), 2.0),
    ]
    for name, f, tf, traffic in (memory_ops[:3] if args.quick else memory_ops):
        try:
            check(name, f(xc), tf(xt))
            row(name, MEMORY_SHAPE, lambda: f(xc), lambda: tf(xt), traffic * nbytes, "GB/s")
        except Exception as exc:
            failed(name, exc)
    v = rng.standard_normal((1, 16, 64, 128, 128), dtype=np.float32)
    vc, vt = both(v)
    check("max_pool3d 2 s2", F.max_pool3d(vc, 2, 2), TF.max_pool3d(vt, 2, 2))
    row("max_pool3d 2 s2", v.shape, lambda: F.max_pool3d(vc, 2, 2), lambda: TF.max_pool3d(vt, 2, 2),
        1.125 * v.nbytes, "GB/s")
    s = rng.standard_normal((4096, 1000), dtype=np.float32)
    sc, st = both(s)
    check("softmax dim=1", F.softmax(sc, 1), TF.softmax(st, 1))
    row("softmax dim=1", s.shape, lambda: F.softmax(sc, 1), lambda: TF.softmax(st, 1), 2.0 * s.nbytes, "GB/s")

    header = (f"# medconv GPU kernels vs torch {torch.__version__} (cuDNN {torch.backends.cudnn.version()}, "
              f"TF32 {'on' if args.tf32 else 'off'})\n\nDevice: {dev['name']} (sm {dev['compute_capability']}, "
              f"{dev['multiprocessors']} SMs), CuPy {cp.__version__}; float32, medians of {repeats} batches.\n\n"
              "| case | shape | medconv ms | torch ms | ratio | medconv rate |\n|---|---|---|---|---|---|\n")
    if mismatches:
        header += "**Checks failed:** " + "; ".join(mismatches) + "\n\n"
    table = header + "".join(f"| {r[0]} | {r[1]} | {r[2]:.3f} | {r[3]:.3f} | {r[4]:.2f} | {r[5]} |\n" for r in rows)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(table)
        print(f"bench_gpu: wrote {args.out}")
    for m in mismatches:
        print(f"bench_gpu: MISMATCH {m}")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
