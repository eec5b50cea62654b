"""Readers for PAN 2012 XML, VTPAN/PANC datapacks and JSONL, on tiny files written here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from safeguard.detectors.grooming import loaders, training
from safeguard.detectors.grooming.scorer import default_scorer
from safeguard.errors import InvalidInput

PAN_XML = """<?xml version="1.0" encoding="UTF-8"?>
<conversations>
 <conversation id="c001">
  <message line="1"><author>p1</author><time>03:20</time><text>hey whats up</text></message>
  <message line="2"><author>v1</author><time>03:21</time><text>nm</text></message>
  <message line="3"><author>p1</author><time>03:21</time><text>how old are you</text></message>
  <message line="4"><author>p1</author><time>03:22</time><text>are your parents home?</text></message>
  <message line="5"><author>p1</author><time>03:22</time><text>this is our little secret ok</text></message>
  <message line="6"><author>p1</author><time>03:23</time><text>add me on snapchat</text></message>
  <message line="7"><author>p1</author><time>03:23</time><text>send me a pic</text></message>
  <message line="8"><author>p1</author><time>03:24</time><text>we should meet in person</text></message>
 </conversation>
 <conversation id="c002">
  <message line="1"><author>u1</author><time>10:00</time><text>did you fix the build</text></message>
  <message line="2"><author>u2</author><time>10:01</time><text>yes, the tests pass now</text></message>
  <message line="3"><author>u1</author><time>10:02</time><text/></message>
 </conversation>
</conversations>
"""


def test_pan2012_conversations_and_author_eval(tmp_path: Path) -> None:
    xml = tmp_path / "pan.xml"
    xml.write_text(PAN_XML)
    ids = tmp_path / "predators.txt"
    ids.write_text("p1\n")
    convs = list(loaders.load_pan2012(xml))
    assert [c.id for c in convs] == ["c001", "c002"]
    assert convs[0].messages[2].text == "how old are you" and convs[0].messages[2].sender_id == "p1"
    assert convs[0].messages[0].recipients == [("v1", "unknown")]
    assert convs[1].messages[2].text == ""
    assert loaders.load_predator_ids(ids) == {"p1"}
    # PAN 2012 has no age bands; the packaged model's threshold (0.97 for v5 and v6) was chosen on author
    # data where they are known, and p1's blatant run between parties of unknown age reaches 0.82 under v6
    # (0.95 under v5, 0.98 under v4): the author evaluation is tested at an explicit threshold (`eval
    # --threshold`)
    report = training.evaluate_authors(default_scorer(), loaders.load_pan2012(xml), {"p1"}, threshold=0.8)
    assert report["authors"] == 4 and report["predators"] == 1 and report["threshold"] == 0.8
    assert report["tp"] == 1 and report["fp"] == 0  # p1 flagged on stage evidence alone, nobody else


def test_pan2012_bad_xml_is_a_clear_error(tmp_path: Path) -> None:
    xml = tmp_path / "bad.xml"
    xml.write_text("<conversations><conversation id='x'>")
    with pytest.raises(InvalidInput):
        list(loaders.load_pan2012(xml))


def test_vtpan_datapack(tmp_path: Path) -> None:
    pack = {
        "datapackID": "tiny",
        "chats": [
            {
                "chatName": "a",
                "className": "predator",
                "content": [
                    {"author": "x", "time": "01:00", "body": "how old are you"},
                    {"author": "y", "time": "01:01", "body": "13"},
                    {"author": "x", "time": "01:02", "body": "don't tell your parents about me"},
                    {"author": "x", "time": "01:03", "body": "add me on whatsapp"},
                    {"author": "x", "time": "01:04", "body": "i'll send you some robux"},
                    {"author": "x", "time": "01:05", "body": "send me a pic"},
                ],
            },
            {"chatName": "b", "className": "non-predator", "content": [{"author": "z", "body": "gg"}]},
        ],
    }
    p = tmp_path / "vtpan.json"
    p.write_text(json.dumps(pack))
    convs = loaders.load_vtpan(p)
    assert [(c.id, c.label) for c in convs] == [("a", 1), ("b", 0)]
    # an explicit threshold: this checks the loader and the evaluation, not the shipped threshold (with
    # nobody's age known, model v4 puts this six-message chat at 0.88, v5 at 0.73 and v6 at 0.38, under
    # their own 0.96-0.97; with an adult writing to a child, v6 at 0.98; docs/grooming.md)
    report = training.evaluate_conversations(default_scorer(), convs, threshold=0.3)
    assert report["conversations"] == 2 and report["positives"] == 1 and report["threshold"] == 0.3
    assert report["tp"] == 1 and report["fp"] == 0
    assert report["latency_median_messages"] is not None and report["latency_median_messages"] <= 6


def test_vtpan_without_labels_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "v.json"
    p.write_text(json.dumps({"chats": [{"chatName": "a", "content": []}]}))
    with pytest.raises(InvalidInput):
        loaders.load_vtpan(p)
    p.write_text("{nope")
    with pytest.raises(InvalidInput):
        loaders.load_vtpan(p)


def test_jsonl_both_shapes(tmp_path: Path) -> None:
    p = tmp_path / "conv.jsonl"
    lines = [
        {
            "conversation_id": "k",
            "message_id": "1",
            "sender": {"id": "a", "age_band": "adult"},
            "text": "hi",
            "sent_at": 1,
        },
        {
            "conversation_id": "k",
            "message_id": "2",
            "sender": {"id": "b", "age_band": "child"},
            "text": "hey",
            "sent_at": 2,
        },
    ]
    p.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    (c,) = loaders.load_jsonl(p)
    assert c.id == "k" and [m.sender_id for m in c.messages] == ["a", "b"]
    assert c.messages[0].recipients == [("b", "child")]
    q = tmp_path / "convs.jsonl"
    q.write_text(json.dumps({"id": "z", "label": 1, "messages": lines}) + "\n")
    (z,) = loaders.load_jsonl(q)
    assert z.label == 1 and len(z.messages) == 2
    q.write_text("{broken\n")
    with pytest.raises(InvalidInput):
        loaders.load_jsonl(q)


def _authors_line(cid: str, label: int, msgs: Any, **extra: object) -> str:
    return json.dumps(
        {"id": cid, "author": cid.split("-")[0], "language": "en", "label": label, **extra, "messages": msgs}
    )


def test_authors_format_reads_directories_tags_and_focus(tmp_path: Path) -> None:
    groom = [
        {"sender": "a", "age_band": "unknown", "text": "ur so good at this", "stage": "rapport"},
        {"sender": "b", "age_band": "child", "text": "thx", "stage": None},
        {"sender": "a", "age_band": "unknown", "text": "send me a pic", "stage": "photos", "explicit": True},
        {"sender": "a", "age_band": "unknown", "text": "pls", "stage": "pressure", "explicit": True},
    ]
    benign = [
        {"sender": "a", "age_band": "adult", "text": "dont tell dad about the party", "stage": "secrecy"},
        {"sender": "b", "age_band": "child", "text": "ok!", "stage": None},
    ]
    (tmp_path / "xa.jsonl").write_text(_authors_line("xa-001", 1, groom) + "\n\n", encoding="utf-8")
    (tmp_path / "xb.jsonl").write_text(_authors_line("xb-001", 0, benign, language="fr") + "\n", encoding="utf-8")
    (tmp_path / "notes.txt").write_text("not a corpus", encoding="utf-8")
    g, b = loaders.load_authors(tmp_path)
    assert (g.id, g.author, g.label, g.language, g.explicit_at) == ("xa-001", "xa", 1, "en", 3)
    assert g.focus == "xa-001/a"  # who made the first explicit request
    assert [m.stage for m in g.messages] == ["rapport", None, "photos", "pressure"]
    assert g.messages[0].recipients == [("xa-001/b", "child")]
    assert (b.author, b.label, b.language, b.focus, b.explicit_at) == ("xb", 0, "fr", None, None)
    # one file works too, and replays through the scorer
    (one,) = loaders.load_authors(tmp_path / "xa.jsonl")
    rep = training.replay(default_scorer(), one)
    assert len(rep.risks) == 4


@pytest.mark.parametrize(
    "line",
    [
        "{not json",
        json.dumps({"id": "x-1", "label": 2, "messages": [{"sender": "a", "text": "hi"}]}),
        json.dumps({"id": "x-1", "label": 0, "messages": []}),
        json.dumps({"id": "x-1", "label": 0, "messages": [{"sender": "a", "text": "hi", "stage": "hugs"}]}),
        json.dumps({"id": "x-1", "label": 0, "messages": [{"sender": "a", "text": "hi", "age_band": "old"}]}),
        json.dumps({"id": "x-1", "label": 0, "messages": [{"text": "no sender"}]}),
    ],
)
def test_authors_format_bad_lines_are_clear_errors(tmp_path: Path, line: str) -> None:
    p = tmp_path / "bad.jsonl"
    p.write_text(line + "\n", encoding="utf-8")
    with pytest.raises(InvalidInput) as e:
        loaders.load_authors(p)
    assert e.value.code == "invalid_conversation_file"
    assert "bad.jsonl:1" in e.value.message


def test_authors_format_refuses_empty_dirs_and_duplicate_ids(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput):
        loaders.load_authors(tmp_path)
    line = _authors_line("x-1", 0, [{"sender": "a", "age_band": "adult", "text": "hi", "stage": None}])
    (tmp_path / "a.jsonl").write_text(line + "\n" + line + "\n", encoding="utf-8")
    with pytest.raises(InvalidInput, match="duplicate"):
        loaders.load_authors(tmp_path)


def test_shipped_author_corpora_load() -> None:
    root = Path(__file__).resolve().parents[3] / "datasets" / "grooming"
    convs = loaders.load_authors(root)
    assert {c.author for c in convs} >= {"wa", "wb", "wd"}
    assert all(c.label in (0, 1) for c in convs)
    assert all(c.focus is not None and c.explicit_at is not None for c in convs if c.label == 1)


def test_leave_one_author_out_folds_are_author_disjoint(tmp_path: Path) -> None:
    from safeguard.detectors.grooming import evaluation

    root = Path(__file__).resolve().parents[3] / "datasets" / "grooming"
    convs = loaders.load_authors(root)
    seen: list[tuple[set[str], set[str]]] = []

    def spy(train: list[loaders.LoadedConversation], val: list[loaders.LoadedConversation]) -> Any:
        seen.append(({c.author or "" for c in train + val}, {c.id for c in train} & {c.id for c in val}))
        return default_scorer(), 0.5

    report = evaluation.leave_one_author_out(convs, {"spy": spy}, bootstrap=20)
    authors = report["authors"]
    assert len(seen) == len(authors)
    for a, (train_authors, overlap) in zip(authors, seen, strict=True):
        assert a not in train_authors and not overlap
    pooled = report["systems"]["spy"]["pooled"]
    assert pooled["conversations"] == len(convs)
    lo, hi = pooled["roc_auc"]["ci95"]
    assert lo <= pooled["roc_auc"]["value"] <= hi


def test_eval_measures_in_time_and_false_alerts() -> None:
    from safeguard.detectors.grooming.evaluation import ConvResult, auc, measures

    rs = [
        ConvResult("g1", "x", "en", 1, 0.9, 3, 5, 1, 2),  # in time
        ConvResult("g2", "x", "en", 1, 0.8, 7, 5, 0, 1),  # alerted late
        ConvResult("g3", "x", "fr", 1, 0.2, None, 4, 0, 0),  # missed
        ConvResult("b1", "x", "en", 0, 0.85, 2, None, 0, 1),  # false alert
        ConvResult("b2", "x", "fr", 0, 0.1, None, None, 0, 0),
    ]
    m = measures(rs)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3)
    assert m["in_time"] == pytest.approx(1 / 3)
    assert m["false_alerts_per_1000_benign"] == pytest.approx(500.0)
    assert m["stage_agreement"] == pytest.approx(1 / 4)
    assert m["roc_auc"] == pytest.approx(auc(np.array([1, 1, 1, 0, 0]), np.array([0.9, 0.8, 0.2, 0.85, 0.1])))
    assert m["roc_auc"] == pytest.approx(4 / 6)
