"""The isodose Python package imports and exposes the shipped seed models."""

import isodose


def test_version_matches_the_crate():
    assert isodose.__version__ == "0.1.0"


def test_seed_models_lists_the_consensus_seeds():
    models = isodose.seed_models()
    assert "Amersham6711" in models
    assert "Best2301" in models
    assert models == sorted(models)
