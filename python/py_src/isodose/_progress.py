"""The tqdm progress bar behind ``progress=True``."""

from __future__ import annotations

from typing import Any, Optional

try:
    from typing import Protocol
except ImportError:  # pragma: no cover - Python < 3.8
    from typing_extensions import Protocol  # type: ignore[assignment]


class TqdmLike(Protocol):
    """A tqdm bar, as ``progress=`` reuses it (reset and relabelled for
    each stage of a computation, advanced by ``update``)."""

    n: Any

    def update(self, n: Any = ...) -> Any: ...

    def reset(self, total: Any = ...) -> Any: ...

    def set_description(self, desc: Any = ..., refresh: Any = ...) -> Any: ...


class TqdmProgress:
    """A callable ``(stage, done, total)`` that shows one tqdm bar per stage
    of a computation (ray tracing, dose, dij passes, gamma).

    With ``bar`` (a tqdm bar of the caller's, ``progress=bar``), that bar is
    reset for each stage, labelled with it, and left open for its owner."""

    def __init__(self, bar: Any = None) -> None:
        self._own = bar is None
        if self._own:
            try:
                from tqdm.auto import tqdm  # type: ignore[import-untyped]
            except ImportError as e:  # pragma: no cover - depends on the environment
                raise ImportError("progress=True needs tqdm: pip install tqdm") from e
            self._tqdm = tqdm
        self._bar: Any = bar
        self._stage: Optional[str] = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage != self._stage:
            self.close()
            self._stage = stage
            if self._own:
                self._bar = self._tqdm(total=total, desc=stage, leave=False)
            else:
                self._bar.reset(total=total)
                self._bar.set_description(stage)
        bar = self._bar
        bar.update(done - bar.n)
        if done >= total:
            self.close()

    def close(self) -> None:
        if self._own:
            if self._bar is not None:
                self._bar.close()
            self._bar = None
        self._stage = None

    def __del__(self) -> None:
        self.close()
