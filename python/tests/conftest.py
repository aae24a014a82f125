"""Shared paths and helpers for the isodose Python tests: reference data inside
the repository, and optional reference packages that CI must have."""

import importlib
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DICOM_DATA = REPO / "dicom-io" / "tests" / "data"


def require(module: str):
    """Imports an optional reference package (pymedphys, dicompyler-core...).

    Locally a missing package skips the test; when the environment variable
    CI is set the import error fails it instead, so that a CI job without the
    package cannot pass by skipping the cross-checks.
    """
    if os.environ.get("CI"):
        return importlib.import_module(module)
    return pytest.importorskip(module)


@pytest.fixture(scope="session")
def tg43_data() -> Path:
    return REPO / "dose-core" / "tests" / "data"
