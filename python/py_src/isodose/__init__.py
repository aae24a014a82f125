"""isodose: radiotherapy dose engine (TG-43 brachytherapy, proton PBS) in Rust."""

from isodose._isodose import __version__, seed_models

__all__ = ["__version__", "seed_models"]
