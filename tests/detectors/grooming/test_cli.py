"""``safeguard grooming score|train|eval`` through typer's runner (the sub-app, as the lead mounts it)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from safeguard.detectors.grooming.cli import app
from tests.detectors.grooming.helpers import GROOMING_LINES

runner = CliRunner()


@pytest.fixture
def conv_file(tmp_path: Path) -> Path:
    p = tmp_path / "conv.jsonl"
    rows = [
        {
            "conversation_id": "demo",
            "message_id": f"m{i}",
            "sender": {"id": "adult1", "age_band": "adult", "account_age_days": 2},
            "recipients": [{"id": "kid1", "age_band": "child"}],
            "text": t,
            "sent_at": 1000 + i,
        }
        for i, t in enumerate(GROOMING_LINES)
    ]
    p.write_text("\n".join(json.dumps(r) for r in rows))
    return p


def test_score_prints_risk_building(conv_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    r = runner.invoke(app, ["score", str(conv_file)])
    assert r.exit_code == 0, r.output
    assert "secrecy.keep_secret" in r.output and "alert" in r.output
    j = runner.invoke(app, ["score", str(conv_file), "--json"])
    risks = [json.loads(line)["conversation_risk"] for line in j.output.strip().splitlines() if line.strip()]
    assert len(risks) == len(GROOMING_LINES) and risks[-1] > risks[0]


def test_score_bad_file(tmp_path: Path) -> None:
    p = tmp_path / "bad.jsonl"
    p.write_text("{nope\n")
    r = runner.invoke(app, ["score", str(p)])
    assert r.exit_code == 2


def test_train_then_eval_reproducibly(tmp_path: Path) -> None:
    out = tmp_path / "m"
    r = runner.invoke(app, ["train", "--out", str(out), "--n", "80", "--seed", "5"])
    assert r.exit_code == 0, r.output
    m1 = (out / "model.json").read_text()
    runner.invoke(app, ["train", "--out", str(out), "--n", "80", "--seed", "5"])
    assert (out / "model.json").read_text() == m1  # same seed, same model
    e = runner.invoke(
        app,
        [
            "eval",
            "--n",
            "80",
            "--seed",
            "5",
            "--model",
            str(out / "model.json"),
            "--exemplars",
            str(out / "exemplars.json"),
            "--json",
        ],
    )
    assert e.exit_code == 0, e.output
    rep = json.loads(e.output)
    assert rep["conversations"] == 20 and 0 <= rep["f0.5"] <= 1


def test_eval_jsonl_and_pan_need_their_inputs(conv_file: Path, tmp_path: Path) -> None:
    labelled = tmp_path / "labelled.jsonl"
    rows = [json.loads(x) for x in conv_file.read_text().splitlines()]
    labelled.write_text(json.dumps({"id": "d", "label": 1, "messages": rows}) + "\n")
    r = runner.invoke(app, ["eval", str(labelled), "--format", "jsonl", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["tp"] == 1
    assert runner.invoke(app, ["eval", str(conv_file), "--format", "jsonl"]).exit_code == 2  # no labels
    assert runner.invoke(app, ["eval", str(conv_file), "--format", "pan2012"]).exit_code == 2  # no --predators


def _pan_xml(tmp_path: Path) -> tuple[Path, Path]:
    """Synthetic conversations written in the PAN 2012 format, with the positives' authors as predators."""
    from xml.sax.saxutils import escape

    from safeguard.detectors.grooming import corpus

    convs = corpus.generate(60, seed=11)
    parts = ["<conversations>"]
    for c in convs:
        parts.append(f'<conversation id="{c.id}">')
        for i, m in enumerate(c.messages, 1):
            parts.append(
                f'<message line="{i}"><author>{m["sender"]["id"]}</author><time>10:{i % 60:02d}</time>'
                f"<text>{escape(m['text'])}</text></message>"
            )
        parts.append("</conversation>")
    parts.append("</conversations>")
    xml = tmp_path / "pan.xml"
    xml.write_text("\n".join(parts), encoding="utf-8")
    ids = tmp_path / "predators.txt"
    ids.write_text("\n".join(c.focus for c in convs if c.label))
    return xml, ids


def test_train_and_eval_on_pan2012_format(tmp_path: Path) -> None:
    xml, ids = _pan_xml(tmp_path)
    out = tmp_path / "pan-model"
    r = runner.invoke(app, ["train", str(xml), "--format", "pan2012", "--predators", str(ids), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert (out / "model.json").exists()
    e = runner.invoke(
        app,
        [
            "eval",
            str(xml),
            "--format",
            "pan2012",
            "--predators",
            str(ids),
            "--model",
            str(out / "model.json"),
            "--json",
        ],
    )
    assert e.exit_code == 0, e.output
    rep = json.loads(e.output)
    assert rep["predators"] == 30 and rep["authors"] == 120
    assert rep["recall"] > 0  # learnt something from stage evidence (no age bands in PAN)
    missing = runner.invoke(app, ["train", str(xml), "--format", "pan2012", "--out", str(out)])
    assert missing.exit_code == 2


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("safeguard")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, cwd=cwd, timeout=180)


def test_score_reads_iso_8601_times_as_docs_write_them(tmp_path: Path) -> None:
    """docs/grooming.md's message shape, ``sent_at`` as ISO 8601, through the command as users run it."""
    lines = [
        {
            "conversation_id": "c-1",
            "message_id": f"m-{i}",
            "sender": {"id": sender, "age_band": band},
            "text": text,
            "sent_at": f"2026-11-23T10:0{i}:00Z",
        }
        for i, (sender, band, text) in enumerate(
            [
                ("u-77", "adult", "hey how old are you"),
                ("u-12", "child", "12"),
                ("u-77", "adult", "this is our secret ok"),
            ]
        )
    ]
    path = tmp_path / "conversation.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    res = _cli("grooming", "score", str(path), "--json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert [r["message_id"] for r in rows] == ["m-0", "m-1", "m-2"]


@pytest.mark.parametrize(
    "line",
    [
        '{"conversation_id": "c", "text": "hi", "sent_at": "2026-11-23T10:00:00"}',  # no time zone
        '{"conversation_id": "c", "text": "hi", "sent_at": "yesterday"}',
        '{"conversation_id": "c", "text": "hi", "sent_at": [1]}',
        '{"conversation_id": "c", "text": "hi", "recipients": [{"age_band": "child"}]}',
        "[1, 2]",
    ],
)
def test_score_refuses_bad_files_with_the_documented_error(tmp_path: Path, line: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(line + "\n")
    res = _cli("grooming", "score", str(path), cwd=tmp_path)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "Traceback" not in res.stderr and "bad.jsonl:1" in res.stderr


def test_eval_leave_one_author_out_table_and_json() -> None:
    root = Path(__file__).resolve().parents[3] / "datasets" / "grooming"
    r = runner.invoke(
        app, ["eval", str(root), "--format", "authors", "--leave-one-author-out", "--bootstrap", "20", "--no-retrain"]
    )
    assert r.exit_code == 0, r.output
    assert "pooled" in r.output and "in_time" in r.output
    r = runner.invoke(
        app,
        [
            "eval",
            str(root),
            "--format",
            "authors",
            "--leave-one-author-out",
            "--bootstrap",
            "20",
            "--json",
            "--no-retrain",
        ],
    )
    report = json.loads(r.output)
    assert set(report["systems"]) == {"fixed model, as is", "fixed model, threshold on validation"}
    shipped = report["systems"]["fixed model, as is"]
    assert set(shipped["folds"]) == set(report["authors"])
    assert shipped["pooled"]["conversations"] == sum(f["conversations"] for f in shipped["folds"].values())
    # the flag needs the authors format
    assert runner.invoke(app, ["eval", str(root), "--format", "jsonl", "--leave-one-author-out"]).exit_code == 2
