"""``safeguard backfill`` end to end on the CPU: bank entries found, thresholds applied, errors reported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

pytest.importorskip("torch")

from safeguard.cli import app
from tests.media_factory import image_bytes

runner = CliRunner()


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, db_url: str) -> Path:
    monkeypatch.setenv("SAFEGUARD_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SAFEGUARD_DATABASE_URL", db_url)
    monkeypatch.setenv("COLUMNS", "250")
    media = tmp_path / "media"
    (media / "sub").mkdir(parents=True)
    for i in range(4):
        (media / f"img{i}.jpg").write_bytes(image_bytes(i))
    (media / "sub" / "copy.png").write_bytes(image_bytes(2, "PNG"))  # same picture, another format
    return tmp_path


def invoke(*args: str) -> tuple[int, str]:
    r = runner.invoke(app, list(args), catch_exceptions=False)
    return r.exit_code, r.stdout


def test_backfill_finds_bank_entries(store: Path) -> None:
    media = store / "media"
    assert invoke("bank", "create", "mods", "--category", "A1", "--threshold", "pdq=31")[0] == 0
    assert invoke("bank", "add", "mods", str(media / "img2.jpg"))[0] == 0
    code, out = invoke("backfill", str(media), "--device", "cpu", "--batch-size", "2", "--jsonl")
    assert code == 0, out
    lines = {Path(d["path"]).name: d for d in map(json.loads, out.splitlines())}
    assert set(lines) == {"img0.jpg", "img1.jpg", "img2.jpg", "img3.jpg", "copy.png"}
    assert lines["img2.jpg"]["matches"][0]["distance"] == 0
    assert lines["img2.jpg"]["matches"][0]["level"] == "match"
    assert lines["img2.jpg"]["matches"][0]["bank"] == "mods"
    assert lines["copy.png"]["matches"] and lines["copy.png"]["matches"][0]["distance"] <= 31
    assert not lines["img0.jpg"]["matches"] and not lines["img3.jpg"]["matches"]
    assert len(lines["img0.jpg"]["pdq"]) == 64
    code, out = invoke("backfill", str(media), "--bank", "mods", "--device", "cpu")
    assert code == 0 and "img2.jpg" in out and "5 files" in out


def test_backfill_errors(store: Path) -> None:
    media = store / "media"
    (media / "broken.jpg").write_bytes(image_bytes(5)[:300])  # a truncated JPEG
    code, out = invoke("backfill", str(media), "--device", "cpu", "--jsonl")
    assert code == 1  # one bad file: reported, the others still hashed
    errors = [d for d in map(json.loads, out.splitlines()) if "error" in d]
    assert [e["error"]["code"] for e in errors] == ["corrupt_media"]
    assert invoke("backfill", str(media), "--bank", "nope", "--device", "cpu")[0] == 1
    assert invoke("backfill", str(media), "--device", "tpu")[0] == 2
    assert invoke("backfill", str(media), "--decode", "sloppy")[0] != 0


def test_backfill_matches_rotations_for_dihedral_banks_only(store: Path) -> None:
    from tests.media_factory import encode, make_image

    media = store / "media"
    (media / "turned.png").write_bytes(encode(make_image(1).transpose(Image.Transpose.ROTATE_90), "PNG"))
    assert invoke("bank", "create", "turns", "--dihedral")[0] == 0
    assert invoke("bank", "create", "plain")[0] == 0
    for bank in ("turns", "plain"):
        assert invoke("bank", "add", bank, str(media / "img1.jpg"))[0] == 0
    code, out = invoke("backfill", str(media), "--device", "cpu", "--jsonl")
    assert code == 0, out
    lines = {Path(d["path"]).name: d for d in map(json.loads, out.splitlines())}
    assert {m["bank"] for m in lines["img1.jpg"]["matches"]} == {"turns", "plain"}
    assert all(m["variant"] == 0 for m in lines["img1.jpg"]["matches"])
    turned = lines["turned.png"]["matches"]
    assert [m["bank"] for m in turned] == ["turns"]  # the plain bank does not look at rotations
    assert turned[0]["variant"] > 0 and turned[0]["distance"] <= 31


def test_backfill_matchers_agree(store: Path) -> None:
    """The hash index and the full scan report the same matches; auto picks one and says which."""
    media = store / "media"
    assert invoke("bank", "create", "turns", "--dihedral", "--threshold", "pdq=31")[0] == 0
    for i in (1, 2):
        assert invoke("bank", "add", "turns", str(media / f"img{i}.jpg"))[0] == 0
    outs = {}
    for kind in ("index", "scan"):
        code, out = invoke("backfill", str(media), "--device", "cpu", "--matcher", kind, "--jsonl")
        assert code == 0, out
        outs[kind] = sorted(out.splitlines())
    assert outs["index"] == outs["scan"]
    assert sum(bool(json.loads(line)["matches"]) for line in outs["index"]) == 3  # img1, img2 and copy.png
    code, out = invoke("backfill", str(media), "--device", "cpu")
    assert code == 0 and "scan (popcount)" in out  # 5 files against 2 entries: the scan is cheaper
    code, out = invoke("backfill", str(media), "--device", "cpu", "--matcher", "index")
    assert code == 0 and "index" in out.split("files")[-1]
    assert invoke("backfill", str(media), "--matcher", "faiss")[0] != 0


def test_backfill_uses_the_cores_on_the_cpu(store: Path) -> None:
    """A bulk job: torch hashes with a thread per core unless told otherwise (the service keeps one)."""
    import os

    import torch

    before = torch.get_num_threads()
    try:
        for args, want in (((), os.cpu_count()), (("--threads", "1"), 1)):
            r = runner.invoke(app, ["backfill", str(store / "media"), "--device", "cpu", *args])
            assert r.exit_code == 0, r.output
            assert f"{want} threads" in r.stderr
    finally:
        torch.set_num_threads(before)
