"""Engine fixtures for the video and stream tests: a fresh SQLite database per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from safeguard.banks.service import BankService
from safeguard.config import Settings
from safeguard.engine import Engine


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = Engine(Settings(data_dir=str(tmp_path / "var"), index_refresh_seconds=0.0))
    try:
        yield eng
    finally:
        eng.close()


@pytest.fixture
def banks(engine: Engine) -> BankService:
    return BankService(engine.db)
