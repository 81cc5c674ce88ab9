"""The identifiers and imaging attributes of a dataset, as plain Python values (JSON-ready)."""
from __future__ import annotations

from typing import Any, Dict, Optional

from pydicom.uid import UID

from .window import _first

__all__ = ["image_meta"]


def _str(ds, keyword: str) -> Optional[str]:
    value = ds.get(keyword)
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _int(ds, keyword: str) -> Optional[int]:
    try:
        return int(ds.get(keyword))
    except (TypeError, ValueError):
        return None


def _float(item, keyword: str) -> Optional[float]:
    if item is None:
        return None
    try:
        return float(_first(item.get(keyword)))
    except (TypeError, ValueError):
        return None


def _floats(item, keyword: str) -> Optional[tuple]:
    value = None if item is None else item.get(keyword)
    if value is None or value == "":
        return None
    try:
        values = [value] if isinstance(value, (int, float, str)) else list(value)
        return tuple(float(v) for v in values)
    except (TypeError, ValueError):
        return None


def _group_item(ds, sequence: str):
    """The shared, else the first frame's, functional group item of `sequence`."""
    for groups in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        seq = ds.get(groups)
        if seq and seq[0].get(sequence):
            return seq[0].get(sequence)[0]
    return None


def image_meta(ds, path=None) -> Dict[str, Any]:
    """Patient, study, series and instance identifiers, modality, geometry, photometric
    interpretation, the file's window and rescale, and the transfer syntax of a dataset.
    Enhanced multi-frame values come from the shared (else first frame's) functional groups."""
    measures = _group_item(ds, "PixelMeasuresSequence") or ds
    position = _group_item(ds, "PlanePositionSequence") or ds
    orientation = _group_item(ds, "PlaneOrientationSequence") or ds
    voi = ds if "WindowCenter" in ds else (_group_item(ds, "FrameVOILUTSequence") or ds)
    rescale = ds if "RescaleSlope" in ds else (_group_item(ds, "PixelValueTransformationSequence") or ds)
    meta = getattr(ds, "file_meta", None)
    ts = meta.get("TransferSyntaxUID") if meta is not None else None
    sop_class = _str(ds, "SOPClassUID")
    frames = _int(ds, "NumberOfFrames")
    return {
        "path": None if path is None else str(path),
        "patient_id": _str(ds, "PatientID"),
        "patient_name": _str(ds, "PatientName"),
        "study_uid": _str(ds, "StudyInstanceUID"),
        "study_date": _str(ds, "StudyDate"),
        "study_description": _str(ds, "StudyDescription"),
        "series_uid": _str(ds, "SeriesInstanceUID"),
        "series_number": _int(ds, "SeriesNumber"),
        "series_description": _str(ds, "SeriesDescription"),
        "sop_instance_uid": _str(ds, "SOPInstanceUID"),
        "sop_class_uid": sop_class,
        "sop_class": UID(sop_class).name if sop_class else None,
        "instance_number": _int(ds, "InstanceNumber"),
        "modality": _str(ds, "Modality"),
        "manufacturer": _str(ds, "Manufacturer"),
        "rows": _int(ds, "Rows"),
        "columns": _int(ds, "Columns"),
        "frames": frames if frames is not None else 1,
        "samples_per_pixel": _int(ds, "SamplesPerPixel"),
        "bits_allocated": _int(ds, "BitsAllocated"),
        "bits_stored": _int(ds, "BitsStored"),
        "pixel_representation": _int(ds, "PixelRepresentation"),
        "photometric": _str(ds, "PhotometricInterpretation"),
        "pixel_spacing": _floats(measures, "PixelSpacing"),
        "slice_thickness": _float(measures, "SliceThickness"),
        "spacing_between_slices": _float(measures, "SpacingBetweenSlices"),
        "image_position": _floats(position, "ImagePositionPatient"),
        "image_orientation": _floats(orientation, "ImageOrientationPatient"),
        "window_center": _floats(voi, "WindowCenter"),
        "window_width": _floats(voi, "WindowWidth"),
        "rescale_slope": _float(rescale, "RescaleSlope"),
        "rescale_intercept": _float(rescale, "RescaleIntercept"),
        "rescale_type": _str(rescale, "RescaleType"),
        "has_modality_lut": "ModalityLUTSequence" in ds,
        "dose_grid_scaling": _float(ds, "DoseGridScaling"),  # RT Dose: Gy = pixels * this
        "transfer_syntax": str(ts) if ts else None,
        "transfer_syntax_name": UID(ts).name if ts else None,
    }
