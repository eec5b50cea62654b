"""Without python-threatexchange (the ``exchanges`` extra) the other exchanges refuse clearly; nothing else needs it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from safeguard.banks.sources import pytx
from safeguard.errors import ConfigError


def test_without_threatexchange_sources_say_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "threatexchange.exchanges.signal_exchange_api", None)  # import fails
    assert pytx.available() is False
    (tmp_path / "list.txt").write_text("pdq " + "a" * 64 + "\n")
    with pytest.raises(ConfigError) as e:
        pytx.FileListSource(tmp_path / "list.txt")
    assert e.value.code == "exchange_unavailable" and "safeguard[exchanges]" in e.value.message
