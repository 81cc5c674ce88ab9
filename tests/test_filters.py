"""medconv.filters: the classic kernels against the numpy reference and scipy.ndimage."""
import numpy as np
import pytest

import medconv.filters as filters
import reference as ref
from conftest import assert_close

BORDER_TO_SCIPY = {"zeros": "constant", "reflect": "mirror", "replicate": "nearest", "circular": "wrap"}


def _reference_filter(image, kernel, border):
    k = np.asarray(kernel, dtype=np.float64)
    ph, pw = k.shape[0] // 2, k.shape[1] // 2
    x = image.reshape((-1, 1) + image.shape[-2:]).astype(np.float64)
    y = ref.conv2d(x, k[None, None], padding=(ph, pw), padding_mode=border)
    return y.reshape(image.shape)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("border", list(BORDER_TO_SCIPY))
@pytest.mark.parametrize("name", sorted(filters.KERNELS))
def test_every_kernel_matches_reference_and_scipy(name, border, dtype):
    rng = np.random.default_rng(len(name) * 7 + len(border))
    shape = (int(rng.integers(6, 40)), int(rng.integers(6, 40)))
    image = rng.standard_normal(shape).astype(dtype)
    kernel = filters.KERNELS[name]
    got = filters.apply(image, kernel, border)
    assert got.dtype == dtype and got.shape == image.shape
    assert_close(got, _reference_filter(image, kernel, border), dtype=dtype, what=name)
    ndi = pytest.importorskip("scipy.ndimage")
    expected = ndi.correlate(image.astype(np.float64), kernel, mode=BORDER_TO_SCIPY[border], cval=0.0)
    assert_close(got, expected, dtype=dtype, what=f"{name} vs scipy")


def test_named_filters_use_their_kernels():
    rng = np.random.default_rng(1)
    image = rng.standard_normal((3, 33, 47)).astype(np.float32)  # a stack of 3 images
    cases = {
        "edge_laplacian8": filters.edge_detect(image),
        "edge_laplacian4": filters.edge_detect(image, "laplacian4"),
        "edge_diagonal": filters.edge_detect(image, "diagonal"),
        "edge_vertical": filters.edge_detect(image, "vertical"),
        "edge_horizontal": filters.edge_detect(image, "horizontal"),
        "sharpen": filters.sharpen(image),
        "box_blur": filters.box_blur(image),
        "gaussian_blur3": filters.gaussian_blur(image),
        "gaussian_blur5": filters.gaussian_blur(image, 5),
        "unsharp_mask5": filters.unsharp_mask(image),
    }
    for name, got in cases.items():
        assert_close(got, _reference_filter(image, filters.KERNELS[name], "zeros"), dtype=np.float32, what=name)


def test_identity_and_blur_properties():
    rng = np.random.default_rng(2)
    image = rng.standard_normal((20, 30))
    np.testing.assert_array_equal(filters.apply(image, filters.KERNELS["identity"]), image)
    flat = np.full((16, 16), 3.0)
    inner = filters.box_blur(flat)[1:-1, 1:-1]
    np.testing.assert_allclose(inner, 3.0, rtol=1e-12)
    # the unsharp mask is 2 * image - gaussian5(image)
    np.testing.assert_allclose(
        filters.unsharp_mask(image), 2 * image - filters.gaussian_blur(image, 5), rtol=1e-10, atol=1e-10
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_any_kernel_numpy_fast_path(dtype):
    # numpy images and kernels with a zero border go straight to the kernel: the same bits as the
    # full path (a list kernel, a strided image), and the reference, for odd kernels of every shape,
    # kernels larger than the image, stacks, and kernels of the other float dtype
    rng = np.random.default_rng(5)
    for kshape, ishape in [((1, 1), (9, 7)), ((3, 5), (20, 31)), ((7, 7), (3, 4)), ((9, 1), (2, 17, 12)),
                           ((5, 5), (1, 1)), ((3, 3), (4, 40, 33))]:
        image = (rng.standard_normal(ishape) * 100).astype(dtype)
        other = np.float64 if dtype == np.float32 else np.float32
        for kernel in (rng.standard_normal(kshape).astype(dtype), rng.standard_normal(kshape).astype(other)):
            got = filters.apply(image, kernel)
            assert got.dtype == dtype and got.shape == image.shape
            np.testing.assert_array_equal(got, filters.apply(image, kernel.tolist()))
            strided = np.zeros(ishape[:-1] + (2 * ishape[-1],), dtype)[..., ::2]
            strided[...] = image
            np.testing.assert_array_equal(got, filters.apply(strided, kernel))
            assert_close(got, _reference_filter(image, kernel.astype(dtype), "zeros"), dtype=dtype, what=str(kshape))


def test_torch_tensor_in_torch_out(torch):
    t = torch.randn(12, 13)
    out = filters.sharpen(t)
    assert isinstance(out, torch.Tensor)
    assert_close(out, _reference_filter(t.numpy(), filters.KERNELS["sharpen"], "zeros"), dtype=np.float32)


@pytest.mark.parametrize(
    "call, err, match",
    [
        (lambda im: filters.apply(im, np.ones((2, 3))), ValueError, "kernel"),
        (lambda im: filters.apply(im, np.ones((3, 3)), border="mirror"), ValueError, "border"),
        (lambda im: filters.apply(im[None, None], np.ones((3, 3))), ValueError, "image"),
        (lambda im: filters.edge_detect(im, "sobel"), ValueError, "variant"),
        (lambda im: filters.gaussian_blur(im, 7), ValueError, "size"),
        (lambda im: filters.sharpen(im.astype(np.int32)), TypeError, "image"),
        (lambda im: filters.sharpen(im.tolist()), TypeError, "image"),
    ],
)
def test_bad_arguments(call, err, match):
    with pytest.raises(err, match=match):
        call(np.zeros((8, 8), np.float32))
