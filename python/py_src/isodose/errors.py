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


class IsodoseOSError(IsodoseError, OSError):
    """A file or folder that cannot be opened, read or written (an
    :class:`OSError` too, so ``except OSError`` catches it)."""


class IsodoseFileNotFoundError(IsodoseOSError, FileNotFoundError):
    """A file or folder that does not exist (a :class:`FileNotFoundError`
    too)."""


__all__ = [
    "IsodoseError",
    "InputError",
    "DicomError",
    "GpuError",
    "IsodoseOSError",
    "IsodoseFileNotFoundError",
]
