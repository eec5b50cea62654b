"""Typed, read-only views of database rows, as services return them (``BankInfo``, ``StreamInfo``, ...).

A view is a frozen dataclass whose fields are named as the row's columns: :func:`from_row` copies them
(values that are computed or renamed are given), so a view cannot drift from its table by a typo, and
:func:`iso_dict` gives the JSON the API and the CLI print (times as ISO 8601)."""

from __future__ import annotations

from dataclasses import asdict, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = ["from_row", "iso_dict"]

V = TypeVar("V", bound="DataclassInstance")


def from_row(cls: type[V], row: object, **given: Any) -> V:
    """A ``cls`` with each field read from ``row``'s attribute of the same name, except those ``given``."""
    return cls(**{f.name: given[f.name] if f.name in given else getattr(row, f.name) for f in fields(cls)})


def iso_dict(view: DataclassInstance) -> dict[str, Any]:
    """The view's fields, in declaration order, with its top-level times as ISO 8601 strings."""
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in asdict(view).items()}
