"""pytest-benchmark suites over the shapes of shared/BENCHMARKS.md (benchmarks/shapes.py):

    pytest benchmarks/ --benchmark-only [--benchmark-group-by=group] [-k S3]

Each case is benchmarked for medconv and its peers at 1 and 2 threads, in one group per case and
thread count; medconv's result is checked against the peer's before it is timed. The main test
suite (testpaths = tests/) does not run these. For one table with ratios and % of the machine's
peaks, use benchmarks/compare.py.
"""
import numpy as np
import pytest

import medconv
import medconv.functional as F
import shapes

torch = pytest.importorskip("torch")

ROUNDS = 5


@pytest.fixture(params=[1, 2], ids=lambda n: f"{n}t")
def threads(request):
    before = medconv.get_num_threads(), torch.get_num_threads()
    medconv.set_num_threads(request.param)
    torch.set_num_threads(request.param)
    try:
        yield request.param
    finally:
        medconv.set_num_threads(before[0])
        torch.set_num_threads(before[1])


def run(benchmark, group, fn, **info):
    benchmark.group = group
    benchmark.extra_info.update(info)
    with torch.no_grad():
        benchmark.pedantic(fn, rounds=ROUNDS, iterations=1, warmup_rounds=1)


def assert_conv_close(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape
    assert np.max(np.abs(a - b)) <= shapes.CONV_TOLERANCE * np.max(np.abs(b))


# ------------------------------------------------------------------------ convolutions


def bench_conv(benchmark, lib, f, tf, data, kw, group, gflop):
    """f (medconv) or tf (torch) on data = (x, w, b); medconv's result checked against torch's first."""
    x, w, b = data
    tx, tw, tb = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b)
    if lib == "medconv":
        with torch.no_grad():
            assert_conv_close(f(x, w, b, **kw), tf(tx, tw, tb, **kw).numpy())
        fn = lambda: f(x, w, b, **kw)  # noqa: E731
    else:
        fn = lambda: tf(tx, tw, tb, **kw)  # noqa: E731
    run(benchmark, group, fn, gflop=gflop)


@pytest.mark.parametrize("lib", ["medconv", "torch"])
@pytest.mark.parametrize("case", shapes.CONVS + shapes.EXTRA_CONVS, ids=lambda c: c.name)
def test_conv_forward(benchmark, threads, case, lib):
    bench_conv(benchmark, lib, shapes.medconv_conv(case), shapes.torch_conv(case), shapes.conv_data(case),
               case.kwargs(), f"{case.name} {case.label} {threads}t", case.flops / 1e9)


@pytest.mark.parametrize("lib", ["medconv", "torch"])
@pytest.mark.parametrize("name", shapes.FLOAT64)
def test_conv_forward_float64(benchmark, threads, name, lib):
    case = shapes.CONV_BY_NAME[name]
    data = tuple(a.astype(np.float64) for a in shapes.conv_data(case))
    bench_conv(benchmark, lib, shapes.medconv_conv(case), shapes.torch_conv(case), data, case.kwargs(),
               f"{case.name} {case.label} float64 {threads}t", case.flops / 1e9)


@pytest.mark.parametrize("lib", ["medconv", "torch"])
@pytest.mark.parametrize("name", shapes.BACKWARD)
def test_conv_backward(benchmark, threads, name, lib):
    case = shapes.CONV_BY_NAME[name]
    nd = case.nd
    fb = shapes.medconv_conv_backward(nd)
    if fb is None:
        pytest.skip(f"medconv has no conv{nd}d_backward")
    x, w, _ = shapes.conv_data(case)
    g = np.random.default_rng(1).standard_normal((case.input[0], case.out_channels) + case.output_spatial,
                                                 dtype=np.float32)
    kw = case.kwargs()
    tx, tw, tg = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(g)

    def peer():
        return torch.ops.aten.convolution_backward(tg, tx, tw, None, [case.stride] * nd, [case.padding] * nd,
                                                   [case.dilation] * nd, False, [0] * nd, case.groups,
                                                   [True, True, False])

    def mine():
        return fb(g, x, w, None, **kw, output_mask=(True, True, False))

    if lib == "medconv":
        with torch.no_grad():
            (gx, gw), (tgx, tgw) = mine()[:2], peer()[:2]
        assert_conv_close(gx, tgx.numpy())
        assert np.max(np.abs(gw - tgw.numpy())) <= 5 * shapes.CONV_TOLERANCE * np.max(np.abs(tgw.numpy()))
    run(benchmark, f"{name} backward {threads}t", mine if lib == "medconv" else peer, gflop=2 * case.flops / 1e9)


@pytest.mark.parametrize("lib", ["medconv", "torch"])
@pytest.mark.parametrize("case", shapes.TRANSPOSED, ids=lambda c: c.name.replace(" ", "_"))
def test_conv_transpose(benchmark, threads, case, lib):
    from medconv.functional import extra as E

    f = getattr(E, f"conv_transpose{case.nd}d")
    tf = getattr(torch.nn.functional, f"conv_transpose{case.nd}d")
    bench_conv(benchmark, lib, f, tf, case.data(), case.kwargs(), f"{case.name} {threads}t", case.flops / 1e9)


# ------------------------------------------------------------------------ memory-bound ops


@pytest.mark.parametrize("lib", ["medconv", "medconv out=", "torch"])
@pytest.mark.parametrize("case", shapes.MEMORY_BOUND + shapes.EXTRA_MEMORY_BOUND, ids=lambda c: c.name.replace(" ", "_"))
def test_memory_bound(benchmark, threads, case, lib):
    x = case.data()
    f, tf = case.medconv(), case.torch()
    tx = torch.from_numpy(x)
    if lib.startswith("medconv"):
        with torch.no_grad():
            want = tf(tx).numpy()
        got = f(x)
        if case.exact:
            np.testing.assert_array_equal(got, want)
        else:
            np.testing.assert_allclose(got, want, rtol=case.rtol, atol=case.atol)
    if lib == "medconv":
        fn = lambda: f(x)  # noqa: E731
    elif lib == "medconv out=":
        y = np.empty(case.output_shape(), np.float32)
        fn = lambda: f(x, out=y)  # noqa: E731
    else:
        fn = lambda: tf(tx)  # noqa: E731
    run(benchmark, f"{case.name} {threads}t", fn, gbytes=case.bytes / 1e9)


# ------------------------------------------------------------------------ image filters


@pytest.mark.parametrize("lib", ["medconv"] + shapes.FILTER_PEERS)
@pytest.mark.parametrize("size", shapes.FILTER_SIZES)
def test_filter(benchmark, threads, size, lib):
    img, k = shapes.filter_data(size)
    mine = shapes.medconv_filter()
    if lib == "medconv":
        peer = shapes.peer_filter(shapes.FILTER_PEERS[0])
        if peer is not None:
            np.testing.assert_allclose(mine(img, k), peer(img, k), rtol=1e-5, atol=1e-5 * float(np.abs(img).max()))
        fn = lambda: mine(img, k)  # noqa: E731
    else:
        peer = shapes.peer_filter(lib)
        if peer is None:
            pytest.skip(f"{lib} is not installed")
        if lib.startswith("cv2"):
            import cv2

            cv2.setNumThreads(threads)
        fn = lambda: peer(img, k)  # noqa: E731
    run(benchmark, f"filter {size}x{size} {threads}t", fn, gflop=shapes.filter_flops(size) / 1e9)


# ------------------------------------------------------------------------ small CNN


@pytest.mark.parametrize("lib", ["medconv", "torch"])
def test_small_cnn_forward(benchmark, threads, lib):
    params = shapes.cnn_params()
    x, _ = shapes.cnn_data()
    mine, peer = shapes.medconv_cnn_forward(params), shapes.torch_cnn_forward(params)
    tx = torch.from_numpy(x)
    if lib == "medconv":
        np.testing.assert_allclose(mine(x), peer(tx).numpy(), rtol=1e-3, atol=1e-4)
    run(benchmark, f"small CNN forward {threads}t", (lambda: mine(x)) if lib == "medconv" else (lambda: peer(tx)),
        gflop=shapes.cnn_flops() / 1e9)


@pytest.mark.parametrize("lib", ["medconv", "torch"])
def test_small_cnn_training_step(benchmark, threads, lib):
    params = shapes.cnn_params()
    x, target = shapes.cnn_data()
    if lib == "medconv":
        model = shapes.medconv_cnn_module(params)
        if model is None:
            pytest.skip("medconv.nn is not available")
        import medconv.nn as mnn
        optim = pytest.importorskip("medconv.optim")
        loss_fn = mnn.CrossEntropyLoss()
        opt = optim.SGD(model.parameters(), lr=1e-3)

        def step():
            opt.zero_grad()
            loss_fn(model(x), target)
            model.backward(loss_fn.backward(), input_grad=False)  # as torch: the input needs no gradient
            opt.step()
    else:
        model = shapes.torch_cnn_module(params)
        loss_fn = torch.nn.CrossEntropyLoss()
        opt = torch.optim.SGD(model.parameters(), lr=1e-3)
        tx, tt = torch.from_numpy(x), torch.from_numpy(target)

        def step():
            opt.zero_grad()
            loss_fn(model(tx), tt).backward()
            opt.step()

    benchmark.group = f"small CNN training step {threads}t"
    benchmark.extra_info["gflop"] = 3 * shapes.cnn_flops() / 1e9
    benchmark.pedantic(step, rounds=3, iterations=1, warmup_rounds=1)


# ------------------------------------------------------------------------ small calls (beyond the set)

SMALL_CALLS = [name for name, _, _ in shapes.small_calls()]


@pytest.mark.parametrize("lib", ["medconv", "torch"])
@pytest.mark.parametrize("name", SMALL_CALLS)
def test_small_call(benchmark, threads, name, lib):
    """Tiny inputs: the per-call overhead (1000 calls per round)."""
    mine, peer = next((m, p) for n, m, p in shapes.small_calls() if n == name)
    if lib == "medconv":
        np.testing.assert_allclose(mine(), peer().numpy(), rtol=1e-5, atol=1e-5)
    benchmark.group = f"small call {name} {threads}t"
    benchmark.pedantic(mine if lib == "medconv" else peer, rounds=ROUNDS, iterations=1000, warmup_rounds=1)
