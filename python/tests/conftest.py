"""Shared paths for the isodose Python tests: reference data inside the repository."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def tg43_data() -> Path:
    return REPO / "dose-core" / "tests" / "data"
