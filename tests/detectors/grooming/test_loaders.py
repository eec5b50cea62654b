"""Readers for PAN 2012 XML, VTPAN/PANC datapacks and JSONL, on tiny files written here."""

from __future__ import annotations

import json
from pathlib import Path

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
    report = training.evaluate_authors(default_scorer(), loaders.load_pan2012(xml), {"p1"})
    assert report["authors"] == 4 and report["predators"] == 1
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
    report = training.evaluate_conversations(default_scorer(), convs)
    assert report["conversations"] == 2 and report["positives"] == 1
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
