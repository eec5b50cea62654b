"""A per-process memory budget for decoding: a decode reserves its estimated bytes before it starts.

Why a budget and not only a pixel cap: the pixel cap (``SAFEGUARD_MAX_IMAGE_PIXELS``) bounds one
image, but a worker decodes several uploads at once (a thread each), and a 4 KB file may declare
100 million pixels. What a decode will allocate is known from the header (size, mode, format), so
each decode first *reserves* that estimate here; the bytes are given back when it ends.

- A reservation that fits is granted at once (small uploads never queue behind a large one: any
  reservation that fits proceeds, there is no first-come order to wait in).
- One that does not fit waits up to ``wait_seconds`` for others to finish, then fails with
  :class:`DecodeBusy` (``503 decode_busy`` with ``Retry-After``): the platform retries later and
  the process never runs out of memory.
- One larger than the whole budget can never fit: ``413 over_memory_budget`` at once.

Background jobs (:mod:`safeguard.workers.video_jobs`) are patient: inside :func:`patience` a
reservation waits longer instead of failing, since nobody holds a connection open for it.

The estimates live with the decoders (:mod:`safeguard.media.decode`, :mod:`safeguard.media.video`);
this module only counts bytes. A budget of 0 bytes counts nothing and never refuses.
"""

from __future__ import annotations

import contextvars
import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from safeguard.errors import MediaError, SafeguardError

__all__ = ["DecodeBudget", "DecodeBusy", "patience"]

_PATIENCE: contextvars.ContextVar[float | None] = contextvars.ContextVar("decode_patience", default=None)


class DecodeBusy(SafeguardError):
    """The decode budget stayed full for the whole wait: try again after ``retry_after`` seconds."""

    code = "decode_busy"
    status = 503

    def __init__(self, message: str, *, retry_after: int, details: object = None) -> None:
        super().__init__(message, details=details)
        self.retry_after = retry_after
        self.headers = {"Retry-After": str(retry_after)}


@contextmanager
def patience(seconds: float) -> Iterator[None]:
    """Reservations made inside this block (in this thread or task) wait up to ``seconds``."""
    token = _PATIENCE.set(seconds)
    try:
        yield
    finally:
        _PATIENCE.reset(token)


class DecodeBudget:
    """Bytes that concurrent decodes in this process may hold together (thread-safe)."""

    def __init__(self, total_bytes: int, wait_seconds: float = 5.0) -> None:
        self.total = max(0, int(total_bytes))
        self.wait_seconds = max(0.0, float(wait_seconds))
        self.in_use = 0
        self.peak = 0
        self.waited = 0  # reservations that had to wait
        self.refused = 0  # reservations that gave up (503)
        self._cond = threading.Condition()

    @property
    def enabled(self) -> bool:
        return self.total > 0

    def check(self, nbytes: int, what: str = "decode") -> None:
        """Raise ``over_memory_budget`` (413) when ``nbytes`` can never fit, whatever else is running."""
        if self.enabled and nbytes > self.total:
            raise MediaError(
                f"{what} would need about {nbytes // 2**20} MiB, over the decode memory budget of "
                f"{self.total // 2**20} MiB",
                code="over_memory_budget",
                status=413,
                details={"estimated_bytes": nbytes, "budget_bytes": self.total},
            )

    @contextmanager
    def reserve(self, nbytes: int, what: str = "decode") -> Iterator[None]:
        """Hold ``nbytes`` of the budget for the block; wait for room, or raise (413 or 503)."""
        nbytes = max(0, int(nbytes))
        if not self.enabled or nbytes == 0:
            yield
            return
        self.check(nbytes, what)
        wait = _PATIENCE.get()
        wait = self.wait_seconds if wait is None else wait
        deadline = time.monotonic() + wait
        with self._cond:
            if self.in_use + nbytes > self.total:
                self.waited += 1
            while self.in_use + nbytes > self.total:
                left = deadline - time.monotonic()
                if left <= 0:
                    self.refused += 1
                    retry = max(1, math.ceil(self.wait_seconds or 1.0))
                    raise DecodeBusy(
                        f"the server is decoding other large media; retry in {retry} s",
                        retry_after=retry,
                        details={"estimated_bytes": nbytes, "budget_bytes": self.total},
                    )
                self._cond.wait(left)
            self.in_use += nbytes
            self.peak = max(self.peak, self.in_use)
        try:
            yield
        finally:
            with self._cond:
                self.in_use -= nbytes
                self._cond.notify_all()
