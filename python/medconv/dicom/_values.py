"""Fast reads of the few numeric and UID elements that every slice needs.

pydicom converts an element on first access through its validating value classes (a DS costs
tens of microseconds); over hundreds of slices that rivals the parse itself. For the plain VRs
below, get() decodes the raw bytes of a not-yet-converted element directly, and hands any value
it does not recognise, and every other VR, to pydicom's own conversion. tests/test_dicom_values.py
checks it against pydicom on every element of pydicom's test files.
"""
from __future__ import annotations

import struct
from typing import Any

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import RawDataElement

__all__ = ["get"]

_INTS = {"US": "H", "SS": "h", "UL": "I", "SL": "i"}
_TEXT = {"UI", "CS"}
_TAGS: dict = {}


def _tag(keyword: str) -> int:
    tag = _TAGS.get(keyword)
    if tag is None:
        tag = tag_for_keyword(keyword)
        if tag is None:
            raise KeyError(keyword)
        _TAGS[keyword] = tag
    return tag


def _one(values: list) -> Any:
    return values[0] if len(values) == 1 else values


def _decode(elem: RawDataElement, vr: str):
    raw = elem.value
    if vr in _INTS:
        size = struct.calcsize(_INTS[vr])
        if len(raw) % size:
            return None
        order = "<" if elem.is_little_endian else ">"
        return _one(list(struct.unpack(f"{order}{len(raw) // size}{_INTS[vr]}", raw)))
    text = raw.decode("ascii").strip(" \x00")
    if not text:
        return ""
    parts = [p.strip(" \x00") for p in text.split("\\")]
    if vr == "DS":
        return _one([float(p) for p in parts])
    if vr == "IS":
        return _one([int(p) for p in parts])
    return _one(parts)  # UI, CS


def get(ds, keyword: str, default=None) -> Any:
    """ds.get(keyword) as plain Python values: float/int/str, a list when multi-valued, "" when
    empty, `default` when absent. DS, IS, US, SS, UL, SL, UI and CS are decoded from raw bytes."""
    tag = _tag(keyword)
    elem = ds.get_item(tag, keep_deferred=True)
    if elem is None:
        return default
    if isinstance(elem, RawDataElement) and elem.value is not None:
        vr = elem.VR or dictionary_VR(tag)
        if vr in _INTS or vr in _TEXT or vr in ("DS", "IS"):
            try:
                value = _decode(elem, vr)
            except (ValueError, UnicodeDecodeError):
                value = None  # not plain: let pydicom convert (and warn) as it does
            if value is not None:
                return value
    try:
        value = ds[tag].value
    except (ValueError, TypeError, OverflowError):
        # pydicom cannot convert it (a DS of 'abc'): the raw text, for the caller to reject by name
        raw = getattr(elem, "value", None)
        if isinstance(raw, (bytes, bytearray)):
            return raw.decode("latin-1").strip(" \x00")
        raise
    if value is None:
        return ""
    if isinstance(value, (bytes, bytearray)):
        return value
    if hasattr(value, "__iter__") and not isinstance(value, str):
        return [_plain(v) for v in value]
    return _plain(value)


def _plain(v):
    if isinstance(v, float):
        return float(v)
    if isinstance(v, int):
        return int(v)
    return str(v) if v is not None else None
