"""The README's "A first scan" block, run as written against a running ``safeguard serve``.

Only what a reader supplies is prepared here: a hash list (``list.csv``), a folder of confirmed images
and an upload. The block's own commands (keys, banks, curl) run unchanged in bash; the port is the
one change, as the test cannot assume 8000 is free.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from safeguard.media import Media
from safeguard.signals.pdq import PDQSignal
from tests.helpers.net import free_port
from tests.media_factory import encode, image_bytes, make_image

ROOT = Path(__file__).resolve().parent.parent


def _first_scan_block() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## A first scan") :]
    match = re.search(r"```bash\n(.*?)```", section, re.S)
    assert match is not None
    return match.group(1)


def _json_values(text: str) -> list[dict[str, Any]]:
    """The JSON objects in ``text``, wherever they start."""
    decoder, out, i = json.JSONDecoder(), [], text.find("{")
    while i != -1:
        try:
            value, end = decoder.raw_decode(text, i)
        except json.JSONDecodeError:  # the CLI's own lines (e.g. a bank's thresholds)
            i = text.find("{", i + 1)
            continue
        out.append(value)
        i = text.find("{", end)
    return out


@pytest.mark.skipif(shutil.which("curl") is None, reason="the README's block uses curl")
def test_the_readme_first_scan_block_runs_as_written(tmp_path: Path) -> None:
    confirmed = tmp_path / "moderator-confirmed"
    confirmed.mkdir()
    (confirmed / "known.jpg").write_bytes(image_bytes(11))
    # the upload: the confirmed image re-encoded (another quality), as platforms see re-uploads
    (tmp_path / "upload.jpg").write_bytes(encode(make_image(11), "JPEG", quality=70))
    listed = PDQSignal().compute(Media.from_bytes(image_bytes(12)))[0].value
    (tmp_path / "list.csv").write_text(f"signal_type,value\npdq,{listed}\n")

    port = free_port()
    venv = Path(sys.executable).parent.parent
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAFEGUARD_")}
    env |= {"SAFEGUARD_PORT": str(port), "SAFEGUARD_LOG_LEVEL": "warning", "SAFEGUARD_INDEX_REFRESH_SECONDS": "0.2"}
    # what ./scripts/serve does on a first start: make the vault key (the service never makes its own)
    init = subprocess.run(
        [str(venv / "bin" / "safeguard"), "vault", "init"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert init.returncode == 0 and (tmp_path / "var" / "vault.key").exists(), init.stderr
    server = subprocess.Popen(
        [str(venv / "bin" / "safeguard"), "serve"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "the service did not start"
            time.sleep(0.2)
        script = _first_scan_block().replace("source .venv/bin/activate", f"source {venv}/bin/activate")
        script = script.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
        res = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script + "\necho"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert res.returncode == 0, res.stdout + res.stderr
        answers = _json_values(res.stdout)  # curl prints no newline after a body
        assert len(answers) == 3, res.stdout
        upload, hash_only, batch = answers
        assert upload["verdict"] == "block" and upload["findings"][0]["bank"] == "known-csam"
        assert hash_only["verdict"] == "allow" and "id" in hash_only
        assert [d["content_id"] for d in batch["decisions"]] == ["c-1"]
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
