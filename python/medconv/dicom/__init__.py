"""medconv.dicom: DICOM files and series -> calibrated float32 arrays and volumes.

Pure functions over pydicom (decoding stays with pydicom's plugins; install
``medconv[codecs]`` for JPEG, JPEG-LS and JPEG 2000):

    read(path, window=None) -> Image            one file: .pixels (modality units), .meta, .dataset
    read_series(path_or_files, series_uid=None, strict=True, window=None) -> Volume
                                                 slices by position: .array, .spacing, .origin,
                                                 .direction, .affine (LPS, as ITK), .report
    scan(folder) -> SeriesList                   headers only: patient -> study -> series
    window(array, center, width) / window(array, "lung")   -> [0, 1] float32
    rescale(stored, slope, intercept, window=...)          the fused C++ kernel itself

Every bad input raises DicomError (a ValueError) naming the file and, where one is at fault,
the tag. The C++ extension is imported on first use, so this package imports without it.
"""
from .errors import DicomError
from .image import Image, read
from .pixels import rescale
from .scan import SeriesInfo, SeriesList, info, scan
from .series import SeriesReport, Volume, read_series
from .window import WINDOW_PRESETS, window

__all__ = [
    "read", "read_series", "scan", "info", "window", "rescale", "WINDOW_PRESETS",
    "Image", "Volume", "SeriesReport", "SeriesInfo", "SeriesList", "DicomError",
]
