"""DicomError: every bad input to medconv.dicom, naming the file and, where one is at fault, the tag."""
from __future__ import annotations

import os
from typing import Optional

from pydicom.datadict import dictionary_description
from pydicom.tag import Tag

__all__ = ["DicomError", "NotDicomError", "tag_text"]


def tag_text(tag) -> str:
    """'(0028,1053) Rescale Slope' for a tag given as an int, a (group, element) pair or a keyword."""
    t = Tag(tag)
    try:
        name = dictionary_description(t)
    except KeyError:
        name = "Private tag" if t.is_private else "Unknown tag"
    return f"({t.group:04X},{t.element:04X}) {name}"


class DicomError(ValueError):
    """A DICOM file, folder or series that medconv.dicom cannot turn into pixels.

    The message names the file (``path``) and, when one element is at fault, the tag
    (``tag``, an int such as 0x00281053), e.g.
    ``(0028,1053) Rescale Slope missing in 'slice_012.dcm'``. A series error also carries the
    ``report`` (a :class:`SeriesReport`) that lists every problem found.
    """

    def __init__(self, message: str, path: Optional[os.PathLike | str] = None, tag=None,
                 report=None):
        self.path = None if path is None else os.fspath(path)
        self.tag = None if tag is None else int(Tag(tag))
        self.report = report
        text = message
        if tag is not None:
            text = f"{tag_text(tag)} {text}"
        self.reason = text  # the message without the file, for reports that list files
        if path is not None:
            text = f"{text} in '{self.path}'"
        super().__init__(text)


class NotDicomError(DicomError):
    """The file is not DICOM at all (read_series and scan pass over such files in a folder)."""
