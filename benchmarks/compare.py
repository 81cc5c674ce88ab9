"""medconv beside its peers on the shapes of shared/BENCHMARKS.md, in one run.

    python benchmarks/compare.py [--threads 1 2] [--json out.json] [--only PATTERN] [--repeat N]

Each row first checks medconv's result against the peer's (a FAIL row is still timed, and says by
how much it missed), then times both: the median of N samples after a warm-up (a sample is one
call, or back-to-back calls lasting about 5 ms for shorter calls), medconv and PyTorch set to the
same thread count. Ratio = peer time / medconv time (> 1: medconv is faster). Rates
are GFLOP/s (convs, filters, CNN) or GB/s (input read + output written once, for the memory-bound
ops), beside the machine's limits measured here at start-up: the FMA peak (a compiled probe of
independent AVX2 FMA chains, 16-lane ones where medconv runs AVX-512, else a large torch matmul) and the copy bandwidth (np.copyto between
two 64 MiB arrays, read + written bytes), each the best of a measurement at the start and one at
the end. For the memory-bound ops, "out= ms" is medconv writing
into a preallocated output: the kernel alone, without the page faults of a fresh output.
With two or more thread counts, a last section times medconv's convs at the lowest and highest
count, interleaved, at least 9 samples each, for the speed-up (the main rows of different thread
counts run minutes apart). Rows beyond shared/BENCHMARKS.md's set: S5 backward, U-Net up-convs
(U1-U3), S3/S6 in float64 (their % of peak is of the float64 FMA peak, half the probe's), H1, C1,
D1, channel softmax, a global pool, and a table of small calls (tiny inputs and a digits CNN at
batch 1, microseconds per call: the per-call overhead, where torch's C++ dispatch is hard to beat).

Calls are interleaved (medconv, peer, medconv, ...) so that drift hits both sides alike. PyTorch's
OpenMP threads would otherwise keep spinning after each of its calls and take the cores from the
next medconv call, so this script sets OMP_WAIT_POLICY=PASSIVE before importing torch (torch's own
parallel regions still use every thread it is given); pass --omp-active to keep OpenMP's default.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

if "--omp-active" not in sys.argv:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import shapes  # noqa: E402

import medconv  # noqa: E402

try:
    import torch
    import torch.nn.functional as TF
except ImportError:  # pragma: no cover - torch is in the bench extra
    torch = None


# ------------------------------------------------------------------------ machine limits

_PROBE_C = r"""
#include <immintrin.h>
float fma_probe(long iters) {
  __m256 a0 = _mm256_set1_ps(1.0f), a1 = _mm256_set1_ps(1.1f), a2 = _mm256_set1_ps(1.2f),
         a3 = _mm256_set1_ps(1.3f), a4 = _mm256_set1_ps(1.4f), a5 = _mm256_set1_ps(1.5f),
         a6 = _mm256_set1_ps(1.6f), a7 = _mm256_set1_ps(1.7f), a8 = _mm256_set1_ps(1.8f),
         a9 = _mm256_set1_ps(1.9f), a10 = _mm256_set1_ps(2.0f), a11 = _mm256_set1_ps(2.1f);
  const __m256 b = _mm256_set1_ps(0.9999999f), c = _mm256_set1_ps(1e-7f);
  for (long i = 0; i < iters; ++i) {
    a0 = _mm256_fmadd_ps(a0, b, c); a1 = _mm256_fmadd_ps(a1, b, c); a2 = _mm256_fmadd_ps(a2, b, c);
    a3 = _mm256_fmadd_ps(a3, b, c); a4 = _mm256_fmadd_ps(a4, b, c); a5 = _mm256_fmadd_ps(a5, b, c);
    a6 = _mm256_fmadd_ps(a6, b, c); a7 = _mm256_fmadd_ps(a7, b, c); a8 = _mm256_fmadd_ps(a8, b, c);
    a9 = _mm256_fmadd_ps(a9, b, c); a10 = _mm256_fmadd_ps(a10, b, c); a11 = _mm256_fmadd_ps(a11, b, c);
  }
  __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                           _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
  s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
  float out[8];
  _mm256_storeu_ps(out, s);
  return out[0] + out[7];
}
"""
# The same with 16 lanes, for CPUs where medconv runs its AVX-512 kernels (their peak is twice AVX2's
# where the FMA units are 512 bits wide).
_PROBE_C_512 = (_PROBE_C.replace("__m256", "__m512").replace("_mm256_", "_mm512_")
                .replace("float out[8]", "float out[16]").replace("out[7]", "out[15]"))


def _probe_lanes():
    """8, or 16 where medconv runs its AVX-512 kernels."""
    return 16 if medconv.backend_info().get("isa") == "avx512" else 8


def _compile_probe():
    """The FMA probe as a ctypes function, or None (no C compiler, or no AVX2+FMA here)."""
    if not {"avx2", "fma"} <= set(medconv.backend_info().get("cpu_features", [])):
        return None
    wide = _probe_lanes() == 16
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        return None
    tmp = tempfile.mkdtemp(prefix="medconv-probe-")
    src, lib = os.path.join(tmp, "probe.c"), os.path.join(tmp, "probe.so")
    with open(src, "w") as fh:
        fh.write(_PROBE_C_512 if wide else _PROBE_C)
    try:
        subprocess.run([cc, "-O2", "-mavx2", "-mfma"] + (["-mavx512f"] if wide else []) + ["-shared", "-fPIC", src, "-o", lib],
                       check=True, capture_output=True, timeout=60)
        fn = ctypes.CDLL(lib).fma_probe
    except (OSError, subprocess.SubprocessError):
        return None
    fn.restype, fn.argtypes = ctypes.c_float, [ctypes.c_long]
    return fn


def _in_threads(n, work):
    """Runs work(i) on n Python threads at once (the callees release the GIL); wall seconds."""
    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


def fma_peak(n_threads, probe):
    """GFLOP/s of float32 FMA on n threads, and how it was measured."""
    if probe is not None:
        iters = 1
        while True:  # size one run to about 0.15 s
            t = _in_threads(1, lambda i: probe(iters))
            if t > 0.05:
                iters = int(iters * 0.15 / t) + 1
                break
            iters *= 4
        flops = 12 * _probe_lanes() * 2  # 12 chains x lanes x (mul + add)
        best = max(n_threads * iters * flops / _in_threads(n_threads, lambda i: probe(iters)) for _ in range(3))
        return best / 1e9, "AVX-512 FMA probe" if _probe_lanes() == 16 else "AVX2 FMA probe"
    if torch is None:
        return float("nan"), "unmeasured"
    torch.set_num_threads(n_threads)
    a = torch.randn(2048, 2048)
    torch.mm(a, a)
    best = 0.0
    for _ in range(3):
        t0 = time.perf_counter()
        torch.mm(a, a)
        best = max(best, 2 * 2048 ** 3 / (time.perf_counter() - t0))
    return best / 1e9, "torch.mm 2048^2 (a lower bound)"


def copy_bandwidth(n_threads, mib=64):
    """GB/s (read + written bytes) of np.copyto between two preallocated arrays, n threads."""
    n = mib * 2 ** 20 // 4
    src = np.ones(n, np.float32)
    dst = np.zeros(n, np.float32)
    parts = np.array_split(np.arange(n), n_threads)
    bounds = [(p[0], p[-1] + 1) for p in parts]

    def work(i):
        a, b = bounds[i]
        np.copyto(dst[a:b], src[a:b])

    _in_threads(n_threads, work)
    t = min(_in_threads(n_threads, work) for _ in range(7))
    return 2 * src.nbytes / t / 1e9


def machine():
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info = medconv.backend_info()
    return {
        "cpu": model, "cores": os.cpu_count(), "platform": platform.platform(),
        "python": platform.python_version(), "numpy": np.__version__,
        "torch": torch.__version__ if torch else None, "medconv": medconv.__version__,
        "isa": info.get("isa"), "cpu_features": info.get("cpu_features"),
    }


# ------------------------------------------------------------------------ timing and checks


MIN_SAMPLE = 0.005  # seconds: calls shorter than this are timed in back-to-back batches this long


def per_call(fn, calls):
    """Seconds per call of `calls` back-to-back calls."""
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) / calls


def batch_size(first):
    """Calls per sample for a call that took `first` seconds: one, or enough to last MIN_SAMPLE (a
    single 0.2 ms call on a shared machine is mostly noise)."""
    return max(1, int(MIN_SAMPLE / max(first, 1e-9)))


def timed(fn, repeat, budget):
    """Median seconds per call over up to `repeat` samples (batch_size calls each) after one warm-up,
    fewer when a call is slow (a call slower than the whole budget is timed once: the check before it
    was its warm-up)."""
    first = per_call(fn, 1)
    if first > budget:
        return first
    calls = batch_size(first)
    n = max(1, min(repeat, int(budget / max(first * calls, 1e-9))))
    return statistics.median(per_call(fn, calls) for _ in range(n))


def close(a, b, rtol=0.0, atol=0.0, scaled=None, exact=False):
    """(ok, message): equal values (exact), |a - b| <= scaled * max|b|, or allclose(rtol, atol)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        return False, f"shape {a.shape} != {b.shape}"
    if exact:
        bad = int(np.count_nonzero(~((a == b) | (np.isnan(a) & np.isnan(b)))))
        return bad == 0, "exact" if bad == 0 else f"{bad} values differ"
    err = np.abs(a - b)
    if scaled is not None:
        bound = scaled * max(float(np.max(np.abs(b))) if b.size else 0.0, 1e-30)
        worst = float(err.max()) if err.size else 0.0
        return worst <= bound, f"max err {worst / (bound / scaled):.1e} x max|peer|"
    ok = np.all(err <= atol + rtol * np.abs(b))
    return bool(ok), f"max rel err {float(np.max(err / np.maximum(np.abs(b), 1e-30))):.1e}"


class Runner:
    def __init__(self, args):
        self.args = args
        self.rows = []
        self.pattern = re.compile(args.only, re.I) if args.only else None
        self.peaks = {}
        self.scaling = []
        self.small = []

    def wanted(self, name):
        return self.pattern is None or bool(self.pattern.search(name))

    def add(self, **row):
        self.rows.append(row)
        print(f"  {row['case']:<28} {row['threads']}t  medconv {fmt(row.get('medconv_ms'))} ms  "
              f"{row.get('peer') or '':<24} {fmt(row.get('peer_ms'))} ms  ratio {fmt(row.get('ratio'), 2)}  "
              f"{row.get('check', '')}", file=sys.stderr, flush=True)

    def time_pair(self, mine, peer, budget=None, repeat=None):
        """Medians of medconv's and the peer's samples (batch_size calls each; `repeat`, default
        --repeat, at most), interleaved (medconv, peer, medconv, ...) after one warm-up call each, so
        that the machine's drift and bursts of noise hit both sides alike."""
        budget = self.args.budget if budget is None else budget
        repeat = self.args.repeat if repeat is None else repeat
        if peer is None:
            return timed(mine, repeat, budget), None
        firsts = [per_call(fn, 1) for fn in (mine, peer)]
        if max(firsts) > budget:
            return firsts[0], firsts[1]
        calls = [batch_size(f) for f in firsts]
        n = max(1, min(repeat, int(budget / max(max(f * c for f, c in zip(firsts, calls)), 1e-9))))
        times = ([], [])
        for _ in range(n):
            for fn, c, out in zip((mine, peer), calls, times):
                out.append(per_call(fn, c))
        return statistics.median(times[0]), statistics.median(times[1])


def fmt(v, digits=1):
    if v is None:
        return "—"
    if isinstance(v, str):
        return v
    if v != v:
        return "nan"
    if abs(v) >= 100:
        return f"{v:.0f}"
    return f"{v:.{digits}f}" if abs(v) >= 1 or digits > 1 else f"{v:.2f}"


# ------------------------------------------------------------------------ the sections


def conv_row(r, threads, name, case, f, tf, data):
    """One conv-like row: medconv's f beside torch's tf on data = (x, w, b), checked, then timed."""
    x, w, b = data
    tx, tw, tb = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b)
    kw = case.kwargs()
    with torch.no_grad():
        ok, msg = close(f(x, w, b, **kw), tf(tx, tw, tb, **kw).numpy(), scaled=shapes.CONV_TOLERANCE)
        m, p = r.time_pair(lambda: f(x, w, b, **kw), lambda: tf(tx, tw, tb, **kw))
    rate = case.flops / m / 1e9
    r.add(case=name, shape=f"{'x'.join(map(str, case.input))} -> {case.out_channels}", threads=threads,
          medconv_ms=m * 1e3, peer="torch", peer_ms=p * 1e3, ratio=p / m, rate=rate, unit="GFLOP/s",
          pct=100 * rate / r.peaks[threads]["fma"], check="ok" if ok else f"FAIL ({msg})")


def run_convs(r, threads):
    for case in shapes.CONVS + shapes.EXTRA_CONVS:
        name = f"{case.name} {case.label}"
        if r.wanted(name):
            conv_row(r, threads, name, case, shapes.medconv_conv(case), shapes.torch_conv(case), shapes.conv_data(case))


def run_backward(r, threads):
    for name in shapes.BACKWARD:
        case = shapes.CONV_BY_NAME[name]
        label = f"{case.name} backward (dx, dw)"
        if not r.wanted(label):
            continue
        fb = shapes.medconv_conv_backward(case.nd)
        if fb is None:
            r.add(case=label, shape="x".join(map(str, case.input)), threads=threads,
                  check=f"skipped: medconv has no conv{case.nd}d_backward")
            continue
        x, w, b = shapes.conv_data(case)
        rng = np.random.default_rng(1)
        g = rng.standard_normal((case.input[0], case.out_channels) + case.output_spatial, dtype=np.float32)
        kw = case.kwargs()
        tx, tw, tg = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(g)
        nd = case.nd

        def mine():
            return fb(g, x, w, None, **kw, output_mask=(True, True, False))

        def peer():
            return torch.ops.aten.convolution_backward(
                tg, tx, tw, None, [case.stride] * nd, [case.padding] * nd, [case.dilation] * nd, False,
                [0] * nd, case.groups, [True, True, False])

        with torch.no_grad():
            gx, gw = mine()[:2]
            tgx, tgw = peer()[:2]
            ok1, m1 = close(gx, tgx.numpy(), scaled=shapes.CONV_TOLERANCE)
            ok2, m2 = close(gw, tgw.numpy(), scaled=shapes.CONV_TOLERANCE * 5)
            m, p = r.time_pair(mine, peer)
        rate = 2 * case.flops / m / 1e9
        r.add(case=label, shape="x".join(map(str, case.input)), threads=threads, medconv_ms=m * 1e3,
              peer="torch", peer_ms=p * 1e3, ratio=p / m, rate=rate, unit="GFLOP/s",
              pct=100 * rate / r.peaks[threads]["fma"],
              check="ok" if ok1 and ok2 else f"FAIL (dx {m1}; dw {m2})")


def run_transposed(r, threads):
    from medconv.functional import extra as E

    for case in shapes.TRANSPOSED:
        if r.wanted(case.name):
            conv_row(r, threads, case.name, case, getattr(E, f"conv_transpose{case.nd}d"),
                     getattr(torch.nn.functional, f"conv_transpose{case.nd}d"), case.data())


def run_float64(r, threads):
    """Rows beyond the set: S3 and S6 in float64 (numpy's default dtype) against torch's float64;
    their % of peak is of the float64 FMA peak, half the float32 probe's."""
    for name in shapes.FLOAT64:
        case = shapes.CONV_BY_NAME[name]
        label = f"{case.name} {case.label} float64"
        if r.wanted(label):
            data = tuple(a.astype(np.float64) for a in shapes.conv_data(case))
            conv_row(r, threads, label, case, shapes.medconv_conv(case), shapes.torch_conv(case), data)
            r.rows[-1]["peak_share"] = 0.5


def run_memory_bound(r, threads):
    for case in shapes.MEMORY_BOUND + shapes.EXTRA_MEMORY_BOUND:
        if not r.wanted(case.name):
            continue
        x = case.data()
        f, tf = case.medconv(), case.torch()
        tx = torch.from_numpy(x)
        y = np.empty(case.output_shape(), np.float32)
        with torch.no_grad():
            ok, msg = close(f(x), tf(tx).numpy(), rtol=case.rtol, atol=case.atol, exact=case.exact)
            m, p = r.time_pair(lambda: f(x), lambda: tf(tx))
            m_out = timed(lambda: f(x, out=y), r.args.repeat, r.args.budget)
        rate = case.bytes / m_out / 1e9
        r.add(case=case.name, shape="x".join(map(str, case.shape)), threads=threads, medconv_ms=m * 1e3,
              medconv_out_ms=m_out * 1e3, peer="torch", peer_ms=p * 1e3, ratio=p / m, rate=rate, unit="GB/s",
              pct=100 * rate / r.peaks[threads]["copy"], check="ok" if ok else f"FAIL ({msg})")


def run_filters(r, threads):
    mine = shapes.medconv_filter()
    for size in shapes.FILTER_SIZES:
        img, k = shapes.filter_data(size)
        for peer_name in shapes.FILTER_PEERS:
            label = f"filter {size}x{size} vs {peer_name.split('.')[0]}"
            if not r.wanted(label):
                continue
            peer = shapes.peer_filter(peer_name)
            shape = "x".join(map(str, shapes.FILTER_IMAGE))
            if peer is None:
                r.add(case=label, shape=shape, threads=threads, check=f"skipped: {peer_name} not installed")
                continue
            if peer_name.startswith("cv2"):
                import cv2

                cv2.setNumThreads(threads)
            ok, msg = close(mine(img, k), peer(img, k), scaled=1e-5)
            m, p = r.time_pair(lambda: mine(img, k), lambda: peer(img, k))
            rate = shapes.filter_flops(size) / m / 1e9
            r.add(case=label, shape=shape, threads=threads, medconv_ms=m * 1e3, peer=peer_name, peer_ms=p * 1e3,
                  ratio=p / m, rate=rate, unit="GFLOP/s", pct=100 * rate / r.peaks[threads]["fma"],
                  check="ok" if ok else f"FAIL ({msg})")


def run_cnn(r, threads):
    shape = "x".join(map(str, shapes.CNN_INPUT))
    params = shapes.cnn_params()
    x, target = shapes.cnn_data()
    if r.wanted("small CNN forward"):
        mine, peer = shapes.medconv_cnn_forward(params), shapes.torch_cnn_forward(params)
        tx = torch.from_numpy(x)
        ok, msg = close(mine(x), peer(tx).numpy(), rtol=1e-3, atol=1e-4)
        m, p = r.time_pair(lambda: mine(x), lambda: peer(tx), budget=r.args.budget * 2)
        rate = shapes.cnn_flops() / m / 1e9
        r.add(case="small CNN forward", shape=shape, threads=threads, medconv_ms=m * 1e3, peer="torch",
              peer_ms=p * 1e3, ratio=p / m, rate=rate, unit="GFLOP/s", pct=100 * rate / r.peaks[threads]["fma"],
              check="ok" if ok else f"FAIL ({msg})")
    if r.wanted("small CNN training step"):
        note = _cnn_training(r, threads, shape, params, x, target)
        if note:
            r.add(case="small CNN training step", shape=shape, threads=threads, check=f"skipped: {note}")


def _cnn_training(r, threads, shape, params, x, target):
    """One SGD step (forward, cross-entropy, backward, update) in both; a note when medconv cannot."""
    model = shapes.medconv_cnn_module(params)
    if model is None:
        return "medconv.nn (Sequential, Conv2d, ..., CrossEntropyLoss) is not available"
    try:
        import medconv.nn as mnn
        import medconv.optim as mopt
    except ImportError as exc:
        return f"medconv.nn / medconv.optim not importable: {exc}"
    lr = 1e-3
    try:
        loss_fn = mnn.CrossEntropyLoss()
        opt = mopt.SGD(model.parameters(), lr=lr)

        def mine():
            opt.zero_grad()
            loss = loss_fn(model(x), target)
            model.backward(loss_fn.backward(), input_grad=False)  # as torch: the input needs no gradient
            opt.step()
            return float(np.asarray(loss))

        tmodel = shapes.torch_cnn_module(params)
        tloss_fn = torch.nn.CrossEntropyLoss()
        topt = torch.optim.SGD(tmodel.parameters(), lr=lr)
        tx, tt = torch.from_numpy(x), torch.from_numpy(target)

        def peer():
            topt.zero_grad()
            loss = tloss_fn(tmodel(tx), tt)
            loss.backward()
            topt.step()
            return float(loss)

        l1, l2 = mine(), peer()  # from identical parameters: same loss, same updated weights
        w1 = np.asarray(model.state_dict()["0.weight"])
        w2 = tmodel[0].weight.detach().numpy()
        ok, msg = close(np.array([l1]), np.array([l2]), rtol=1e-4, atol=1e-5)
        ok2, msg2 = close(w1, w2, scaled=1e-4)
        m, p = r.time_pair(mine, peer, budget=r.args.budget * 2)
    except Exception as exc:  # the nn API is young: report, do not abort the run
        return f"medconv training step failed: {type(exc).__name__}: {exc}"
    rate = 3 * shapes.cnn_flops() / m / 1e9
    r.add(case="small CNN training step", shape=shape, threads=threads, medconv_ms=m * 1e3, peer="torch",
          peer_ms=p * 1e3, ratio=p / m, rate=rate, unit="GFLOP/s", pct=100 * rate / r.peaks[threads]["fma"],
          check="ok" if ok and ok2 else f"FAIL (loss {msg}; conv1 weight {msg2})")
    return None


def _small_row(r, threads, name, mine, peer, rtol):
    """Checks mine() against peer() (a tensor), times both, and adds the row to the small calls."""
    ok, msg = close(mine(), peer().numpy(), rtol=rtol, atol=1e-5)
    m, p = r.time_pair(mine, peer)
    r.small.append(dict(case=name, threads=threads, medconv_us=m * 1e6, torch_us=p * 1e6, ratio=p / m,
                        check="ok" if ok else f"FAIL ({msg})"))


def run_small_calls(r, threads):
    """Tiny inputs: per-call overhead, in microseconds (beyond the set)."""
    import medconv.nn as mnn

    for name, mine, peer in shapes.small_calls():
        if r.wanted(name):
            _small_row(r, threads, name, mine, peer, rtol=1e-5)
    x = np.random.default_rng(0).standard_normal(shapes.DIGITS_INPUT, dtype=np.float32)
    tx = torch.from_numpy(x)
    if r.wanted("digits CNN forward"):
        tmodel = shapes.torch_digits_module().eval()
        model = mnn.from_torch(tmodel)
        model.eval()

        def mine():
            with mnn.no_grad():
                return model(x)

        def peer():
            with torch.no_grad():
                return tmodel(tx)

        _small_row(r, threads, "digits CNN forward, 1 image", mine, peer, rtol=1e-4)
    if r.wanted("digits CNN training step"):
        import medconv.optim as mopt

        tmodel = shapes.torch_digits_module()
        model = mnn.from_torch(tmodel)
        target = np.array([3], np.int64)
        loss_fn, tloss_fn = mnn.CrossEntropyLoss(), torch.nn.CrossEntropyLoss()
        opt, topt = mopt.SGD(model.parameters(), lr=1e-3), torch.optim.SGD(tmodel.parameters(), lr=1e-3)
        tt = torch.from_numpy(target)

        def mine():
            opt.zero_grad()
            loss = loss_fn(model(x), target)
            model.backward(loss_fn.backward(), input_grad=False)
            opt.step()
            return np.asarray(loss)

        def peer():
            topt.zero_grad()
            loss = tloss_fn(tmodel(tx), tt)
            loss.backward()
            topt.step()
            return loss.detach()

        # identical weights: the same loss
        _small_row(r, threads, "digits CNN training step, 1 image", mine, peer, rtol=1e-4)


def small_table(rows):
    out = ["Small calls (beyond the set: per-call overhead on tiny inputs, microseconds per call):", "",
           "| case | thr | medconv us | torch us | ratio | check |", "|---|---|---|---|---|---|"]
    out += [f"| {row['case']} | {row['threads']} | {fmt(row['medconv_us'])} | {fmt(row['torch_us'])} | "
            f"{row['ratio']:.2f} | {row['check']} |" for row in rows]
    return "\n".join(out)


SECTIONS = [run_convs, run_backward, run_transposed, run_float64, run_memory_bound, run_filters, run_cnn,
            run_small_calls]


SCALING_REPEAT = 9  # samples per thread count at least: a ratio of two noisy times wants more than --repeat's 5


def run_scaling(r, lo, hi):
    """medconv's speed-up from lo to hi threads on the convs, the two thread counts' calls
    interleaved (lo, hi, lo, ...) so that both see the same moment of a shared machine."""
    for case in shapes.CONVS:
        name = f"{case.name} {case.label}"
        if not r.wanted(name):
            continue
        x, w, b = shapes.conv_data(case)
        f, kw = shapes.medconv_conv(case), case.kwargs()
        out = np.empty_like(f(x, w, b, **kw))

        def at(n):
            def call():
                medconv.set_num_threads(n)
                f(x, w, b, out=out, **kw)
            return call

        m_lo, m_hi = r.time_pair(at(lo), at(hi), repeat=max(r.args.repeat, SCALING_REPEAT))
        r.scaling.append({"case": name, "threads": [lo, hi], "ms": [m_lo * 1e3, m_hi * 1e3], "speedup": m_lo / m_hi})
        print(f"  {name:<28} {lo}t {fmt(m_lo * 1e3)} ms  {hi}t {fmt(m_hi * 1e3)} ms  speed-up {m_lo / m_hi:.2f}",
              file=sys.stderr, flush=True)


def scaling_table(rows):
    lo, hi = rows[0]["threads"]
    out = [f"Thread scaling of medconv's convs ({lo} and {hi} threads interleaved in one run):", "",
           f"| case | {lo}t ms | {hi}t ms | speed-up |", "|---|---|---|---|"]
    out += [f"| {row['case']} | {fmt(row['ms'][0])} | {fmt(row['ms'][1])} | {row['speedup']:.2f} |" for row in rows]
    return "\n".join(out)


# ------------------------------------------------------------------------ output


def table(rows, peaks):
    out = ["| case | shape | thr | medconv ms | out= ms | peer | peer ms | ratio | rate | % of peak | check |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        rate = f"{fmt(row['rate'])} {row['unit']}" if row.get("rate") is not None else "—"
        if row.get("unit") == "GB/s":
            pct = f"{fmt(row['pct'])}% copy bw (out=)"
        elif row.get("pct") is not None:
            pct = f"{fmt(row['pct'])}% {'float64 ' if row.get('peak_share') else ''}FMA"
        else:
            pct = "—"
        out.append(f"| {row['case']} | {row['shape']} | {row['threads']} | {fmt(row.get('medconv_ms'))} | "
                   f"{fmt(row.get('medconv_out_ms'))} | {row.get('peer') or '—'} | {fmt(row.get('peer_ms'))} | "
                   f"{fmt(row.get('ratio'), 2)} | {rate} | {pct} | {row.get('check', '')} |")
    lines = [f"- {n} thread{'s' if n > 1 else ''}: FMA peak {p['fma']:.0f} GFLOP/s ({p['fma_method']}), "
             f"copy bandwidth {p['copy']:.1f} GB/s" for n, p in sorted(peaks.items())]
    return "\n".join(out) + "\n\nMachine limits measured by this run:\n" + "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts (default 1 2)")
    ap.add_argument("--json", metavar="FILE", help="also write the rows and machine limits as JSON")
    ap.add_argument("--only", metavar="PATTERN", help="only the cases whose name matches this regex")
    ap.add_argument("--repeat", type=int, default=5, help="timed runs per side and row (median; default 5)")
    ap.add_argument("--omp-active", action="store_true",
                    help="keep OpenMP's default wait policy (torch's idle threads spin after each call)")
    ap.add_argument("--no-scaling", action="store_true",
                    help="skip the interleaved thread-scaling rows (run when --threads has two or more counts)")
    ap.add_argument("--budget", type=float, default=3.0,
                    help="seconds per side and row at most: slow calls get fewer runs (default 3)")
    args = ap.parse_args(argv)
    if torch is None:
        sys.exit("compare.py needs torch (pip install 'medconv[bench]')")
    if any(n < 1 for n in args.threads) or args.repeat < 1:
        sys.exit("--threads and --repeat must be positive")
    r = Runner(args)
    info = machine()
    print(f"{info['cpu']}, {info['cores']} cores; medconv {info['medconv']} ({info['isa']}), torch {info['torch']}",
          file=sys.stderr)
    probe = _compile_probe()
    t_start = time.perf_counter()
    before = medconv.get_num_threads(), torch.get_num_threads()
    try:
        for n in args.threads:
            peak, method = fma_peak(n, probe)
            r.peaks[n] = {"fma": peak, "fma_method": method, "copy": copy_bandwidth(n)}
            print(f"{n} threads: FMA peak {peak:.0f} GFLOP/s, copy {r.peaks[n]['copy']:.1f} GB/s", file=sys.stderr)
            medconv.set_num_threads(n)
            torch.set_num_threads(n)
            for section in SECTIONS:
                section(r, n)
        if len(args.threads) > 1 and not args.no_scaling:
            run_scaling(r, min(args.threads), max(args.threads))
        # the machines are shared: measure the limits again at the end and keep the best of the two
        for n in args.threads:
            peak, method = fma_peak(n, probe)
            p = r.peaks[n]
            p["fma"], p["copy"] = max(p["fma"], peak), max(p["copy"], copy_bandwidth(n))
        for row in r.rows:
            if row.get("rate") is not None:
                limit = r.peaks[row["threads"]]["copy" if row["unit"] == "GB/s" else "fma"] * row.get("peak_share", 1)
                row["pct"] = 100 * row["rate"] / limit
    finally:
        medconv.set_num_threads(before[0])
        torch.set_num_threads(before[1])
    print(table(r.rows, r.peaks))
    if r.small:
        print("\n" + small_table(r.small))
    if r.scaling:
        print("\n" + scaling_table(r.scaling))
    print(f"\n{info['cpu']}, {info['cores']} cores, medconv ISA {info['isa']}, torch {info['torch']}; "
          f"{time.perf_counter() - t_start:.0f} s")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"machine": info, "peaks": {str(k): v for k, v in r.peaks.items()}, "rows": r.rows,
                       "scaling": r.scaling, "small_calls": r.small, "args": vars(args)}, fh, indent=1)
    return 1 if any(str(row.get("check", "")).startswith("FAIL") for row in r.rows) else 0


if __name__ == "__main__":
    sys.exit(main())
