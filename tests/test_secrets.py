"""Secrets at rest: sealed with a key outside the database, useless without it, bound to their purpose."""

from __future__ import annotations

import base64
import os
import stat
import threading
from pathlib import Path

import pytest

from safeguard import secrets
from safeguard.config import Settings
from safeguard.errors import SafeguardError


def test_seal_and_open(tmp_path: Path) -> None:
    box = secrets.SecretBox.from_file(tmp_path / "k" / "secrets.key")
    token = box.seal("hunter2-hunter2-hunter2", purpose="webhook")
    assert token.startswith(secrets.PREFIX + box.key_id + ".")
    assert "hunter2" not in token and box.seal("hunter2-hunter2-hunter2", purpose="webhook") != token  # fresh nonce
    assert box.open_(token, purpose="webhook") == "hunter2-hunter2-hunter2"


@pytest.mark.parametrize(
    "spoil",
    [
        lambda t: t[:-4] + ("AAAA" if not t.endswith("AAAA") else "BBBB"),  # tampered ciphertext or tag
        lambda t: t.replace(secrets.PREFIX, "sgs9.", 1),  # not our format
        lambda t: "plain secret",
        lambda t: t + "!",  # not base64
    ],
)
def test_tampered_tokens_do_not_open(tmp_path: Path, spoil: object) -> None:
    box = secrets.SecretBox.from_file(tmp_path / "secrets.key")
    token = box.seal("s" * 32)
    with pytest.raises(SafeguardError) as got:
        box.open_(spoil(token))  # type: ignore[operator]
    assert got.value.code == "secret_unreadable"


def test_purpose_and_key_are_bound(tmp_path: Path) -> None:
    box = secrets.SecretBox.from_file(tmp_path / "a.key")
    other = secrets.SecretBox.from_file(tmp_path / "b.key")
    token = box.seal("s" * 32, purpose="webhook")
    with pytest.raises(SafeguardError, match="failed authentication"):
        box.open_(token, purpose="report")
    with pytest.raises(SafeguardError, match=f"sealed under key {box.key_id}"):
        other.open_(token, purpose="webhook")


def test_key_file_is_private_and_created_once(tmp_path: Path) -> None:
    settings = Settings(data_dir=str(tmp_path / "data"))
    path = tmp_path / "data" / "keys" / "secrets.key"
    boxes: list[secrets.SecretBox] = []

    def make() -> None:
        boxes.append(secrets.SecretBox.from_file(path))

    threads = [threading.Thread(target=make) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({b.key_id for b in boxes}) == 1  # processes starting together agree on one key
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert len(base64.b64decode(path.read_bytes().strip())) == 32
    assert secrets.open_(settings, secrets.seal(settings, "x" * 20)) == "x" * 20
    assert [p.name for p in path.parent.iterdir()] == ["secrets.key"]  # no temporary files left


def test_setting_names_the_key_file(tmp_path: Path) -> None:
    settings = Settings(data_dir=str(tmp_path / "data"), secrets_key_file=str(tmp_path / "mounted" / "k"))
    secrets.seal(settings, "y" * 20)
    assert (tmp_path / "mounted" / "k").exists() and not (tmp_path / "data" / "keys").exists()


def test_a_bad_key_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "k").write_text("not base64 at all!")
    with pytest.raises(SafeguardError) as got:
        secrets.SecretBox.from_file(tmp_path / "k")
    assert got.value.code == "invalid_secrets_key"
    (tmp_path / "short").write_text(base64.b64encode(b"x" * 16).decode())
    with pytest.raises(SafeguardError, match="32 bytes"):
        secrets.SecretBox.from_file(tmp_path / "short")
