"""Opening files and listing folders, with every failure turned into a DicomError naming the file."""
from __future__ import annotations

import os
from typing import List, Optional

import pydicom
from pydicom.errors import InvalidDicomError

from .errors import DicomError, NotDicomError

__all__ = ["read_dataset", "list_files", "find_dicomdir", "has_pixels", "DEFER_SIZE"]

# Elements longer than this are read only when used (the pixel data, big private blobs).
DEFER_SIZE = 64 * 1024

_PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)  # Pixel Data, Float and Double Float Pixel Data


def has_pixels(ds) -> bool:
    """Whether the dataset carries pixel data of any kind."""
    return any(t in ds for t in _PIXEL_TAGS)


def _looks_like_headerless_dicom(path: str) -> bool:
    """A file without preamble and 'DICM' marker (ACR-NEMA style) starts with a group 0002 or 0008
    element; anything else is not worth a forced parse."""
    with open(path, "rb") as f:
        head = f.read(8)
    if len(head) < 8:
        return False
    return int.from_bytes(head[:2], "little") in (0x0002, 0x0008) or \
        int.from_bytes(head[:2], "big") in (0x0002, 0x0008)


def _dcmread(path: str, header_only: bool, defer: bool, force: bool):
    return pydicom.dcmread(path, stop_before_pixels=header_only,
                           defer_size=DEFER_SIZE if defer else None, force=force)


def read_dataset(path, *, header_only: bool = False, defer: bool = False):
    """pydicom.dcmread, with 'not DICOM', 'empty' and parse failures raised as DicomError.

    header_only stops before the pixel data; defer leaves large values (the pixel data) in the
    file until they are used. Missing files and permission problems stay OSError.
    """
    p = os.fspath(path)
    if os.path.isdir(p):
        raise DicomError("is a folder, not a file: use read_series() or scan()", p)
    try:
        try:
            ds = _dcmread(p, header_only, defer, force=False)
        except InvalidDicomError:
            if not _looks_like_headerless_dicom(p):
                raise NotDicomError("is not a DICOM file (no 'DICM' marker, no DICOM header)", p) from None
            ds = _dcmread(p, header_only, defer, force=True)
    except (NotDicomError, DicomError, FileNotFoundError, PermissionError, IsADirectoryError, MemoryError,
            Warning):
        raise  # warnings turned into errors by the caller's filters stay theirs
    except Exception as exc:  # pydicom raises many kinds on a broken file; name the file here
        raise DicomError(f"cannot be parsed as DICOM ({type(exc).__name__}: {exc})", p) from exc
    if len(ds) == 0:
        raise DicomError("has no DICOM data elements after its header: truncated file", p)
    return ds


def list_files(folder) -> List[str]:
    """Every regular file under folder, recursively, sorted, hidden files and folders left out."""
    out = []
    for root, dirs, files in os.walk(os.fspath(folder)):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        out.extend(os.path.join(root, f) for f in sorted(files) if not f.startswith("."))
    return out


def find_dicomdir(folder) -> Optional[str]:
    """The DICOMDIR at the top of folder, if there is one."""
    folder = os.fspath(folder)
    for name in sorted(os.listdir(folder)):
        if name.upper() == "DICOMDIR" and os.path.isfile(os.path.join(folder, name)):
            return os.path.join(folder, name)
    return None
