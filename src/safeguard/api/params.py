"""Bounded types for path and query parameters.

A database id is a signed 64-bit integer: a larger one in a URL (``/v1/entries/99999999999999999999``)
reached the driver and failed there with a 500. These types refuse it with 422 ``invalid_request``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

from safeguard.strictjson import INT64_MAX

__all__ = ["AfterId", "PathId"]

#: a row id in a path
PathId = Annotated[int, Path(ge=0, le=INT64_MAX)]
#: a paging cursor ("rows after this id") in a query string
AfterId = Annotated[int, Query(ge=0, le=INT64_MAX)]
