"""Output piped to a file or another program is never cut at 80 columns (as users pipe it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from safeguard.media import Media
from safeguard.signals.pdq import PDQSignal
from tests.media_factory import image_bytes


def _run(*args: str, cwd: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env["SAFEGUARD_DATA_DIR"] = str(cwd / "var")
    env.update(extra)
    exe = Path(sys.executable).with_name("safeguard")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=180)


def test_hash_and_scan_print_whole_values_and_paths_into_a_pipe(tmp_path: Path) -> None:
    folder = tmp_path / "a-folder-with-a-rather-long-name-so-that-the-path-is-over-eighty-columns-wide"
    folder.mkdir()
    path = folder / "upload-with-a-long-file-name-0001.jpg"
    data = image_bytes(3)
    path.write_bytes(data)
    pdq = PDQSignal().compute(Media.from_bytes(data))[0].value

    res = _run("hash", str(path), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert any(pdq in line for line in res.stdout.splitlines())  # one line holds the whole hash
    assert str(path) in res.stdout.replace("\n", "") and str(path) in "".join(res.stdout.splitlines(True))

    assert _run("bank", "create", "known", cwd=tmp_path).returncode == 0
    assert _run("bank", "add", "known", str(path), cwd=tmp_path).returncode == 0
    res = _run("scan", str(folder), cwd=tmp_path)  # a blocked file is listed with its path
    assert res.returncode == 0, res.stderr
    assert any(str(path) in line for line in res.stdout.splitlines())


def test_a_command_that_creates_a_new_database_says_where(tmp_path: Path) -> None:
    """The default data directory is relative: a command run elsewhere names the database it creates."""
    res = _run("keys", "create", "--role", "platform", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert f"no database at {tmp_path / 'var' / 'safeguard.db'}" in " ".join(res.stderr.split())
    again = _run("keys", "list", cwd=tmp_path)
    assert again.returncode == 0 and "no database" not in again.stderr


def test_scan_skips_files_that_are_not_media_and_fails_on_corrupt_ones(tmp_path: Path) -> None:
    folder = tmp_path / "store"
    folder.mkdir()
    (folder / "photo.jpg").write_bytes(image_bytes(5))
    (folder / "notes.txt").write_text("not an image")
    res = _run("scan", str(folder), cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "skipped" in res.stdout
    (folder / "broken.jpg").write_bytes(image_bytes(6)[:200])  # a truncated JPEG is an error
    res = _run("scan", str(folder), cwd=tmp_path)
    assert res.returncode == 1 and "broken.jpg" in res.stdout


def test_settings_lists_every_setting_of_the_one_table(tmp_path: Path) -> None:
    """The stream monitor's and the video jobs' settings were read from the environment on their own."""
    from safeguard.config import SETTINGS

    res = _run("settings", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    for env in ("SAFEGUARD_STREAM_SAMPLE_INTERVAL", "SAFEGUARD_STREAM_ALLOW_FILES", "SAFEGUARD_VIDEO_ASYNC_BYTES"):
        assert env in res.stdout
    assert all(s.env in res.stdout for s in SETTINGS)


def test_plugin_commands_print_whole_paths_into_a_pipe(tmp_path: Path) -> None:
    # `safeguard vault init` (a plug-in command group) printed through a plain rich Console, cut at 80 columns
    home = tmp_path / "an-operator-data-directory-whose-path-is-well-over-eighty-columns-when-printed"
    home.mkdir()
    key = str(home / "vault.key")
    res = _run("vault", "init", cwd=home, SAFEGUARD_VAULT_KEY_FILE=key)
    assert res.returncode == 0, res.stderr
    assert any(key in line for line in res.stdout.splitlines()), res.stdout


def test_no_command_builds_its_own_rich_console() -> None:
    # every console comes from safeguard.terminal.make_console, which never cuts piped output
    src = Path(__file__).resolve().parents[1] / "src" / "safeguard"
    offenders = [
        str(p.relative_to(src))
        for p in src.rglob("*.py")
        if p.name != "terminal.py" and "Console(" in p.read_text(encoding="utf-8").replace("make_console(", "")
    ]
    assert not offenders, offenders
