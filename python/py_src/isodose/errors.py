"""Exceptions raised by isodose.

Every error of the Rust engine reaches Python as one of these, with the
engine's full message (which names the field, value, file or table at fault).
"""


class IsodoseError(Exception):
    """Base class of isodose's exceptions."""


class InputError(IsodoseError, ValueError):
    """Invalid input: a value, array shape, table, option or model."""


class DicomError(IsodoseError):
    """A DICOM file that cannot be read or written."""


class GpuError(IsodoseError):
    """The GPU backend is unavailable or failed."""


__all__ = ["IsodoseError", "InputError", "DicomError", "GpuError"]
