"""read(path) -> Image: one file's pixels in modality units, its metadata and its dataset."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

import numpy as np
from pydicom.dataset import Dataset

from ._files import read_dataset
from .errors import DicomError
from .meta import image_meta
from .pixels import empty_pixels, frame_count, stored_pixels, write_modality
from .window import file_window, resolve_window

__all__ = ["Image", "read", "window_for"]


@dataclass(frozen=True, repr=False)
class Image:
    """One DICOM file's pixels and what describes them.

    pixels: float32 modality units (Hounsfield units for CT) -- (rows, cols), (frames, rows, cols)
        for multi-frame, with a trailing 3 (RGB) for colour; in [0, 1] when read with a window.
    meta: identifiers and imaging attributes as plain values (see medconv.dicom.meta.image_meta).
    dataset: the pydicom Dataset, for anything else.
    path: the file it came from (None for a dataset passed in).
    """
    pixels: np.ndarray
    meta: Dict[str, Any]
    dataset: Dataset
    path: Optional[str]

    def __repr__(self) -> str:
        m = self.meta
        return (f"Image({'x'.join(map(str, self.pixels.shape))} float32, {m.get('modality')}, "
                f"{m.get('photometric')}, path={self.path!r})")


def window_for(ds, window, path) -> Optional[Tuple[float, float]]:
    """The (center, width) that `window` names for this dataset; 'file' is the file's own."""
    if isinstance(window, str) and window == "file":
        pair = file_window(ds)
        if pair is None:
            raise DicomError("missing: the file recommends no window for window='file'", path,
                             tag="WindowCenter")
        return pair
    return resolve_window(window)


def read(path, *, window=None, device=None) -> Image:
    """Read one DICOM file (or a pydicom Dataset) into float32 modality units.

    Rescale Slope/Intercept (per frame where the file has per-frame values) or the Modality LUT
    is applied; colour comes out RGB (YBR converted, palette applied). `window` -- a preset name,
    a (center, width) pair, or 'file' for the file's own -- windows to [0, 1] in the same pass,
    inverting MONOCHROME1 images. Bad files raise DicomError naming the file.
    device="cuda": the stored values go to the GPU and medconv's CUDA kernel makes .pixels there, a
    CuPy array (pip install 'medconv[cuda]'); None (the default) keeps everything on the CPU.
    """
    if isinstance(path, Dataset):
        ds = path
        filename = getattr(ds, "filename", None)
        where = filename if isinstance(filename, (str, os.PathLike)) else None
    else:
        where = os.fspath(path)
        ds = read_dataset(where)
    pair = window_for(ds, window, where)
    stored, bits = stored_pixels(ds, where)
    invert = pair is not None and str(ds.get("PhotometricInterpretation", "")).strip() == "MONOCHROME1"
    pixels = empty_pixels(stored.shape, device)
    write_modality(ds, where, stored, bits, pixels, window=pair, invert=invert)
    if frame_count(ds, where) == 1:
        pixels = pixels[0]
    return Image(pixels, image_meta(ds, where), ds, None if where is None else str(where))
