"""The tqdm progress bar behind ``progress=True``."""

from __future__ import annotations

from typing import Any, Optional


class TqdmProgress:
    """A callable ``(stage, done, total)`` that shows one tqdm bar per stage
    of a computation (ray tracing, dose, dij passes, gamma)."""

    def __init__(self) -> None:
        try:
            from tqdm.auto import tqdm  # type: ignore[import-untyped]
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError("progress=True needs tqdm: pip install tqdm") from e
        self._tqdm = tqdm
        self._bar: Any = None
        self._stage: Optional[str] = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage != self._stage:
            self.close()
            self._stage = stage
            self._bar = self._tqdm(total=total, desc=stage, leave=False)
        bar = self._bar
        bar.update(done - bar.n)
        if done >= total:
            self.close()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        self._bar = None
        self._stage = None

    def __del__(self) -> None:
        self.close()
