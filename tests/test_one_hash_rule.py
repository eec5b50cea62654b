"""One rule for PDQ values: bank entries are reference hashes wherever they come from; a scan records
the hash of ``SAFEGUARD_PDQ_DECODE``; ``safeguard hash`` prints either (``--as-scan``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from fastapi.testclient import TestClient

from safeguard.engine import Engine
from safeguard.media import Media
from safeguard.signals.pdq import PDQSignal
from tests.helpers.api import auth
from tests.media_factory import encode, make_image

# large enough for the fast decode to scale the JPEG down (short side >= 2 x 256)
PHOTO = encode(make_image(22, size=(1280, 960)), "JPEG", quality=90)


def _pdq(media: Media) -> str:
    return PDQSignal().compute(media)[0].value


def _hash_cli(path: Path, *flags: str) -> str:
    exe = Path(sys.executable).with_name("safeguard")
    env = {**os.environ, "SAFEGUARD_DATA_DIR": str(path.parent / "var")}
    res = subprocess.run(
        [str(exe), "hash", str(path), "--format", "jsonl", *flags], capture_output=True, text=True, env=env, timeout=120
    )
    assert res.returncode == 0, res.stderr
    return str(json.loads(res.stdout)["pdq"]["value"])


def test_bank_entries_are_reference_hashes_and_hash_prints_what_a_scan_records(
    app_client: TestClient, engine: Engine, keys: dict[str, str], tmp_path: Path
) -> None:
    reference = _pdq(Media.from_bytes(PHOTO))
    as_scanned = _pdq(engine.media_for(PHOTO))
    assert engine.settings.pdq_decode == "fast" and reference != as_scanned  # this photo hashes 2 bits apart

    admin = auth(keys["admin"])
    assert app_client.post("/v1/banks", headers=admin, json={"name": "mods"}).status_code in (200, 201)
    r = app_client.post("/v1/banks/mods/entries", headers=admin, files={"file": ("p.jpg", PHOTO, "image/jpeg")})
    assert r.status_code in (200, 201), r.text
    added = {s["type"]: s["value"] for s in r.json()["added"]}
    assert added["pdq"] == reference  # the API adds what `safeguard bank add` adds

    path = tmp_path / "p.jpg"
    path.write_bytes(PHOTO)
    assert _hash_cli(path) == reference
    assert _hash_cli(path, "--as-scan") == as_scanned

    scan = app_client.post("/v1/scan", headers=auth(keys["platform"]), files={"file": ("p.jpg", PHOTO, "image/jpeg")})
    recorded = {s["type"]: s["value"] for s in scan.json()["signals"]}
    assert recorded["pdq"] == as_scanned
