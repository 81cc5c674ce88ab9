"""Stored pixel values out of a dataset, and the fused kernel that makes them modality units.

Decoding compressed data is pydicom's plugins' job; uncompressed data is viewed straight from the
file's bytes. Either way the stored integers reach the C++ kernel (`_core.dicom_rescale`), which
writes float32 modality units (slope * x + intercept in float64), optionally windowed, in place.
"""
from __future__ import annotations

import numbers
import os
from typing import List, Optional, Sequence, Tuple

import numpy as np
import pydicom
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    UID,
)

from ._values import get
from .errors import DicomError
from .window import resolve_window

__all__ = ["rescale", "empty_pixels", "stored_pixels", "check_pixel_length", "modality_transforms",
           "write_modality", "frame_count", "KERNEL_DTYPES"]

KERNEL_DTYPES = tuple(np.dtype(t) for t in
                      (np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.float32))

_NATIVE_LITTLE = {ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian}
_NATIVE_BIG = {ExplicitVRBigEndian}
_TS_TAG = 0x00020010
_PIXEL_DATA = 0x7FE00010


def _core():
    """medconv._core, imported on first use so that medconv.dicom imports without the extension."""
    from .. import _core as core

    if not hasattr(core, "dicom_rescale"):
        raise ImportError("medconv._core has no dicom_rescale: rebuild the extension "
                          "(pip install --no-build-isolation -e .)")
    return core


# --- the kernel --------------------------------------------------------------------------------

def rescale(stored, slope: float = 1.0, intercept: float = 0.0, *, bits_stored: Optional[int] = None,
            window=None, invert: bool = False, out: Optional[np.ndarray] = None) -> np.ndarray:
    """Stored pixel values to float32 modality units in one multi-threaded pass:
    ``float32(stored * slope + intercept)`` computed in float64, then, when `window` is given,
    the DICOM linear window to [0, 1] (and ``1 - y`` when `invert`, for MONOCHROME1 display).

    stored: int8/uint8/int16/uint16/int32/uint32 (or float32) numpy array, any shape.
    bits_stored: keep only this many low bits (sign-extended for signed dtypes), as
    (0028,0101) Bits Stored says; None keeps the values as they are.
    window: None, a preset name (see WINDOW_PRESETS) or a (center, width) pair.
    out: a float32 C-contiguous array of the same shape to write into (e.g. a volume's slice).

    On the GPU: when `stored` or `out` is a CuPy array (or a torch CUDA tensor), medconv's CUDA kernel
    does the same pass there, with the same bits; host `stored` values are copied to the GPU as they
    are (integers: fewer bytes than the float32 result), e.g.
    ``rescale(stored, slope, intercept, out=cupy.empty(stored.shape, cupy.float32))``.
    read(path, device="cuda") does this for a whole file.
    """
    if not isinstance(stored, np.ndarray) or (out is not None and not isinstance(out, np.ndarray)):
        from .._backend import on_gpu

        if on_gpu(stored, out):
            return _rescale_gpu(stored, slope, intercept, bits_stored, window, invert, out)
    arr = np.asarray(stored)
    if arr.dtype.kind in "iuf" and not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))  # visible copy: the kernel reads native order
    if arr.dtype not in KERNEL_DTYPES:
        raise TypeError(f"stored must be int8, uint8, int16, uint16, int32, uint32 or float32, got "
                        f"{arr.dtype}; convert it first, e.g. stored.astype(np.int32)")
    if bits_stored is None:
        bits = 0
    elif isinstance(bits_stored, numbers.Integral) and not isinstance(bits_stored, bool) \
            and 1 <= bits_stored <= 8 * arr.dtype.itemsize and arr.dtype.kind in "iu":
        bits = int(bits_stored)
    else:
        raise ValueError(f"bits_stored must be None or 1..{8 * arr.dtype.itemsize} for an integer "
                         f"{arr.dtype} array, got {bits_stored!r}")
    for name, value in (("slope", slope), ("intercept", intercept)):
        if not isinstance(value, numbers.Real) or not np.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
    pair = resolve_window(window)
    if invert and pair is None:
        raise ValueError("invert=True needs a window: MONOCHROME1 is inverted for display, "
                         "never in the modality values")
    arr = np.require(arr, requirements=["C", "A"])  # copies only a strided or unaligned input
    if out is None:
        out = np.empty(arr.shape, dtype=np.float32)
    else:
        if not isinstance(out, np.ndarray) or out.dtype != np.float32 or out.shape != arr.shape:
            raise ValueError(f"out must be a float32 numpy array of shape {arr.shape}, got "
                             f"{getattr(out, 'dtype', type(out).__name__)} {getattr(out, 'shape', '')}")
        if not out.flags.c_contiguous or not out.flags.writeable or not out.flags.aligned:
            raise ValueError("out must be C-contiguous, aligned and writeable")
        if np.may_share_memory(arr, out) and not (arr.dtype == np.float32 and
                                                  arr.__array_interface__["data"][0] ==
                                                  out.__array_interface__["data"][0]):
            raise ValueError("out overlaps stored: only an exact in-place float32 call is allowed")
    center, width = pair if pair is not None else (None, None)
    _core().dicom_rescale(arr, out, slope=float(slope), intercept=float(intercept), bits_stored=bits,
                          center=center, width=width, invert=bool(invert))
    return out


def _rescale_gpu(stored, slope, intercept, bits_stored, window, invert, out):
    """rescale with medconv's CUDA kernel (medconv._gpu.dicom_rescale); host stored values go to the
    GPU as they are."""
    from .. import _backend, _cuda, _gpu

    if not _backend.on_gpu(stored):
        arr = np.asarray(stored)
        if arr.dtype.kind in "iuf" and not arr.dtype.isnative:
            arr = arr.astype(arr.dtype.newbyteorder("="))
        if arr.dtype not in KERNEL_DTYPES:
            raise TypeError(f"stored must be int8, uint8, int16, uint16, int32, uint32 or float32, got "
                            f"{arr.dtype}; convert it first, e.g. stored.astype(np.int32)")
        stored = _cuda.cupy().asarray(np.ascontiguousarray(arr))
    return _gpu.dicom_rescale(stored, slope, intercept, bits_stored=bits_stored, window=window, invert=invert,
                              out=out)


def empty_pixels(shape, device=None):
    """An uninitialised float32 array for the modality values: numpy for device None or "cpu", a CuPy
    array on the current GPU for "cuda" ("cuda:N": on GPU N, which must then be the current one)."""
    if device is None or device == "cpu":
        return np.empty(shape, dtype=np.float32)
    kind, _, index = str(device).partition(":")
    if kind != "cuda" or (index and not index.isdigit()):
        raise ValueError(f"device must be None, 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    from .. import _cuda

    cp = _cuda.cupy()  # GPUUnavailableError (what to install) without CuPy
    current = _cuda.device_id()
    if index and int(index) != current:
        raise ValueError(f"device {device!r} is not the current CUDA device (cuda:{current}); select it with "
                         f"cupy.cuda.Device({int(index)}).use() or pass device='cuda'")
    return cp.empty(shape, dtype=np.float32)


# --- stored values out of a dataset ------------------------------------------------------------

def transfer_syntax(ds, path) -> UID:
    """The dataset's transfer syntax; inferred from how pydicom read it when the meta lacks it."""
    meta = getattr(ds, "file_meta", None)
    ts = get(meta, "TransferSyntaxUID") if meta is not None else None
    if ts and isinstance(ts, str):
        return UID(ts)
    implicit, little = getattr(ds, "original_encoding", (None, None))
    elem = ds.get_item(_PIXEL_DATA, keep_deferred=True) if _PIXEL_DATA in ds else None
    encapsulated = elem is not None and getattr(elem, "is_undefined_length", False)
    if implicit is None or encapsulated:
        raise DicomError("missing: cannot tell how the pixel data is encoded", path, tag=_TS_TAG)
    ts = ImplicitVRLittleEndian if implicit else (ExplicitVRLittleEndian if little else ExplicitVRBigEndian)
    if meta is None:
        ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ts  # lets pydicom's decoders run on it too
    return ts


def _int(ds, keyword: str, path, default=None) -> int:
    value = get(ds, keyword)
    if value is None or value == "":
        if default is not None:
            return default
        raise DicomError("missing", path, tag=keyword)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise DicomError(f"is not an integer: {value!r}", path, tag=keyword) from None


def frame_count(ds, path) -> int:
    n = _int(ds, "NumberOfFrames", path, default=1)
    if n < 1:
        raise DicomError(f"must be at least 1, got {n}", path, tag="NumberOfFrames")
    return n


def _expected_bytes(rows, cols, frames, spp, bits_allocated) -> int:
    n = rows * cols * frames * spp
    return (n * bits_allocated + 7) // 8


def _native_layout(ds, path, ts) -> Optional[Tuple[int, int, int, int, int, int]]:
    """(frames, rows, cols, bits allocated, signed, bits stored) of uncompressed greyscale pixel data
    that can be viewed straight from the file's bytes; None when pydicom must decode it (colour,
    1-bit, palette, float, a compressed syntax) or a Modality LUT applies."""
    if ts not in _NATIVE_LITTLE and ts not in _NATIVE_BIG:
        return None
    if _PIXEL_DATA not in ds or "ModalityLUTSequence" in ds:
        return None
    spp = _int(ds, "SamplesPerPixel", path, default=1)
    photometric = str(get(ds, "PhotometricInterpretation", "")).strip()
    bits_allocated = _int(ds, "BitsAllocated", path)
    if spp != 1 or photometric not in ("MONOCHROME1", "MONOCHROME2") or bits_allocated not in (8, 16, 32):
        return None
    rows, cols = _int(ds, "Rows", path), _int(ds, "Columns", path)
    frames = frame_count(ds, path)
    signed = _int(ds, "PixelRepresentation", path)
    if signed not in (0, 1):
        raise DicomError(f"must be 0 or 1, got {signed}", path, tag="PixelRepresentation")
    bits_stored = _int(ds, "BitsStored", path, default=bits_allocated)
    if not 1 <= bits_stored <= bits_allocated:
        raise DicomError(f"{bits_stored} does not fit (0028,0100) Bits Allocated {bits_allocated}",
                         path, tag="BitsStored")
    return frames, rows, cols, bits_allocated, signed, bits_stored


def _short(got: int, layout, path) -> DicomError:
    frames, rows, cols, bits_allocated = layout[:4]
    expected = _expected_bytes(rows, cols, frames, 1, bits_allocated)
    return DicomError(f"has {got} bytes where {frames} frame(s) of {rows}x{cols} {bits_allocated}-bit "
                      f"pixels need {expected}: truncated file", path, tag=_PIXEL_DATA)


def check_pixel_length(ds, path) -> None:
    """Raises DicomError when uncompressed pixel data is shorter than the image needs, without
    reading it: a deferred value is measured against the file's size."""
    layout = _native_layout(ds, path, transfer_syntax(ds, path))
    if layout is None:
        return
    elem = ds.get_item(_PIXEL_DATA, keep_deferred=True)
    value = getattr(elem, "value", None)
    if value is not None:
        have = len(value)
    else:
        have = int(getattr(elem, "length", 0) or 0)
        tell = getattr(elem, "value_tell", None)
        if tell is not None and path is not None and os.path.isfile(path):
            have = min(have, os.path.getsize(path) - int(tell))
    frames, rows, cols, bits_allocated = layout[:4]
    if have < _expected_bytes(rows, cols, frames, 1, bits_allocated):
        raise _short(have, layout, path)


def _native_view(ds, path, ts) -> Optional[Tuple[np.ndarray, int]]:
    """Uncompressed greyscale pixels as a view of the file's bytes, (frames, rows, cols), and the
    Bits Stored to keep; None when pydicom must decode them."""
    layout = _native_layout(ds, path, ts)
    if layout is None:
        return None
    frames, rows, cols, bits_allocated, signed, bits_stored = layout
    try:
        data = ds.PixelData
    except Exception as exc:  # a deferred read of a file that changed or vanished
        if isinstance(exc, Warning):
            raise
        raise DicomError(f"cannot be read ({type(exc).__name__}: {exc})", path, tag=_PIXEL_DATA) from exc
    if data is None or len(data) < _expected_bytes(rows, cols, frames, 1, bits_allocated):
        raise _short(0 if data is None else len(data), layout, path)
    order = "<" if ts in _NATIVE_LITTLE else ">"
    dtype = np.dtype(f"{order}{'i' if signed else 'u'}{bits_allocated // 8}")
    arr = np.frombuffer(data, dtype=dtype, count=rows * cols * frames).reshape(frames, rows, cols)
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))  # big-endian file: one visible swap
    if not arr.flags.aligned:
        arr = arr.copy()
    return arr, (bits_stored if bits_stored < bits_allocated else 0)


def _decoder_check(ts: UID, path) -> None:
    """A clear error, before decoding, for a compressed syntax that no installed plugin decodes."""
    if not ts.is_compressed:
        return
    from pydicom.pixels import get_decoder

    try:
        decoder = get_decoder(ts)
    except NotImplementedError:
        raise DicomError(f"'{ts.name}' ({ts}): pydicom has no decoder for this compressed syntax",
                         path, tag=_TS_TAG) from None
    if not decoder.is_available:
        missing = "; ".join(f"{k}: {v}" for k, v in decoder.missing_dependencies.items()) \
            if isinstance(decoder.missing_dependencies, dict) else "; ".join(decoder.missing_dependencies)
        raise DicomError(f"'{ts.name}' ({ts}) pixel data needs a decoder plugin that is not installed: "
                         f"pip install 'medconv[codecs]' (pydicom plugins: {missing})", path, tag=_TS_TAG)


def _pydicom_pixels(ds, path, ts) -> np.ndarray:
    """pydicom's decode, colour as RGB (YBR converted, palette applied), as (frames, rows, cols[, 3])."""
    from pydicom.pixels import apply_color_lut, pixel_array

    _decoder_check(ts, path)
    try:
        arr = pixel_array(ds, as_rgb=True)
        if str(ds.get("PhotometricInterpretation", "")).strip() == "PALETTE COLOR":
            arr = apply_color_lut(arr, ds)
    except Warning:
        raise
    except Exception as exc:
        text = " ".join(str(exc).split())  # pydicom's multi-line plugin report on one line
        if "less than expected" in text or "truncat" in text.lower():
            raise DicomError(f"is shorter than the image size needs: truncated file ({text})", path,
                             tag=_PIXEL_DATA) from exc
        raise DicomError(f"cannot be decoded ({type(exc).__name__}: {text})", path, tag=_PIXEL_DATA) from exc
    frames = frame_count(ds, path)
    spp = _int(ds, "SamplesPerPixel", path, default=1)
    if frames == 1:
        arr = arr[None]
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    if arr.dtype == np.bool_:
        arr = arr.view(np.uint8)
    return arr


def stored_pixels(ds, path) -> Tuple[np.ndarray, int]:
    """The stored values of every frame, (frames, rows, cols) or (frames, rows, cols, 3) for colour,
    in native byte order, and the Bits Stored the kernel must keep (0: all of them)."""
    ts = transfer_syntax(ds, path)
    if not any(t in ds for t in (_PIXEL_DATA, 0x7FE00008, 0x7FE00009)):
        sop = ds.get("SOPClassUID")
        kind = f" ({UID(sop).name})" if sop else ""
        raise DicomError(f"missing: not an image{kind}", path, tag=_PIXEL_DATA)
    view = _native_view(ds, path, ts)
    if view is not None:
        return view
    return _pydicom_pixels(ds, path, ts), 0


# --- the modality transform --------------------------------------------------------------------

def _ds_number(item, keyword: str, path) -> float:
    value = get(item, keyword)
    if value is None or value == "":
        raise DicomError("is empty", path, tag=keyword)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DicomError(f"is not a number: {value!r}", path, tag=keyword) from None
    if not np.isfinite(number):
        raise DicomError(f"is not finite: {value!r}", path, tag=keyword)
    return number


def _linear(item, path) -> Optional[Tuple[float, float]]:
    """(slope, intercept) from an item holding Rescale Slope/Intercept; None if it holds neither."""
    has_slope, has_icpt = "RescaleSlope" in item, "RescaleIntercept" in item
    if not has_slope and not has_icpt:
        return None
    if has_slope != has_icpt:
        missing = "RescaleIntercept" if has_slope else "RescaleSlope"
        present = "(0028,1053) Rescale Slope" if has_slope else "(0028,1052) Rescale Intercept"
        raise DicomError(f"missing (but {present} is present)", path, tag=missing)
    return _ds_number(item, "RescaleSlope", path), _ds_number(item, "RescaleIntercept", path)


def _functional(ds, frame: int, sequence: str):
    """The first item of `sequence` for a frame from the per-frame, else the shared, functional groups."""
    for groups, index in (("PerFrameFunctionalGroupsSequence", frame), ("SharedFunctionalGroupsSequence", 0)):
        seq = ds.get(groups)
        if seq and len(seq) > index and seq[index].get(sequence):
            return seq[index].get(sequence)[0]
    return None


def modality_transforms(ds, path, frames: int) -> List[Tuple[float, float]]:
    """(slope, intercept) for every frame: per-frame Pixel Value Transformation, shared, then the
    top-level Rescale Slope/Intercept, else (1, 0). A Modality LUT Sequence gives [] (see
    write_modality)."""
    if ds.get("ModalityLUTSequence"):
        return []
    top = _linear(ds, path) or (1.0, 0.0)
    if "PerFrameFunctionalGroupsSequence" not in ds and "SharedFunctionalGroupsSequence" not in ds:
        return [top] * frames
    out = []
    for f in range(frames):
        item = _functional(ds, f, "PixelValueTransformationSequence")
        pair = _linear(item, path) if item is not None else None
        out.append(pair or top)
    return out


def write_modality(ds, path, stored: np.ndarray, bits: int, out: np.ndarray, *,
                   window=None, invert: bool = False, transforms: Optional[Sequence] = None) -> None:
    """Writes the modality values (or their window) of stored (frames, ...) into out (frames, ...)."""
    frames = stored.shape[0]
    if transforms is None:
        transforms = modality_transforms(ds, path, frames)
    if not transforms:  # Modality LUT: pydicom's lookup, then the kernel for the window and float32
        from pydicom.pixels import apply_modality_lut

        if bits:
            stored = stored & np.array((1 << bits) - 1, dtype=stored.dtype) if stored.dtype.kind == "u" \
                else (stored.astype(np.int32) << (32 - bits)) >> (32 - bits)
        try:
            values = apply_modality_lut(stored, ds)
        except Exception as exc:
            if isinstance(exc, Warning):
                raise
            raise DicomError(f"cannot be applied ({type(exc).__name__}: {exc})", path,
                             tag="ModalityLUTSequence") from exc
        if values.dtype not in KERNEL_DTYPES:
            values = values.astype(np.int32 if values.dtype.kind in "iu" else np.float32)
        rescale(values, window=window, invert=invert, out=out)
        return
    if stored.dtype not in KERNEL_DTYPES:  # float64 pixel data: to float32, visibly
        stored = stored.astype(np.float32)
    if all(t == transforms[0] for t in transforms):
        slope, intercept = transforms[0]
        rescale(stored, slope, intercept, bits_stored=bits or None, window=window, invert=invert, out=out)
        return
    for f, (slope, intercept) in enumerate(transforms):
        rescale(stored[f], slope, intercept, bits_stored=bits or None, window=window, invert=invert, out=out[f])
