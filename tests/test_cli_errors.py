"""Errors the CLI prints are shown as written: ``[exchanges]`` in an install hint is not rich markup."""

from __future__ import annotations

import pytest

import safeguard.cli as cli
from safeguard.errors import SafeguardError
from safeguard.exchange.feed import _iso


def test_error_messages_keep_their_brackets(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def boom() -> None:
        raise SafeguardError("this exchange needs python-threatexchange: pip install 'safeguard[exchanges]'", code="x")

    monkeypatch.setattr(cli, "app", boom)
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code == 2
    assert "pip install 'safeguard[exchanges]'" in capsys.readouterr().err


def test_feed_times_are_iso_8601_with_their_offset() -> None:
    # SQLite's raw rows give a space and no offset; every stored time is UTC
    assert _iso("2026-12-06 18:25:18.509150") == "2026-12-06T18:25:18.509150+00:00"
    assert _iso("not a time") == "not a time"
