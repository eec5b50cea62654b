"""Each stage's indicators fire on plain, non-explicit wording, in several languages, and not on chat."""

from __future__ import annotations

import pytest

from safeguard.detectors.grooming.indicators import STAGES, find_hits, indicator_names, normalise

CASES = [
    ("rapport", "You're SO mature for your age"),
    ("rapport", "nobody... no one understands you like i do"),
    ("probing", "how old r u"),
    ("probing", "are your parents home?"),
    ("probing", "where do you live"),
    ("secrecy", "this is our little secret"),
    ("secrecy", "don't tell your parents"),
    ("isolation", "add me on Snapchat"),
    ("isolation", "let's move this somewhere private"),
    ("gifts", "i'll send you some robux"),
    ("gifts", "I can buy you a gift card"),
    ("photos", "send me a pic"),
    ("photos", "turn on your cam"),
    ("sexual", "you look sexy"),
    ("pressure", "i'll share the pics with everyone unless you answer"),
    ("pressure", "if you really loved me you would"),
    ("meeting", "we should meet in person"),
    ("meeting", "i can pick you up after school"),
    # other languages
    ("probing", "¿Cuántos años tienes?"),
    ("secrecy", "no se lo digas a nadie"),
    ("isolation", "hablemos por WhatsApp"),
    ("probing", "tes parents sont là ?"),
    ("secrecy", "c'est notre petit secret"),
    ("meeting", "on se voit en vrai ?"),
    ("probing", "Sind deine Eltern zu Hause?"),
    ("secrecy", "das ist unser kleines Geheimnis"),
    ("gifts", "ich schenke dir Robux"),
    ("photos", "schick mir ein Foto"),
    ("pressure", "ich werde die Bilder teilen"),
]


@pytest.mark.parametrize(("stage", "text"), CASES)
def test_stage_indicator_fires(stage: str, text: str) -> None:
    assert stage in {h.stage for h in find_hits(text)}


@pytest.mark.parametrize(
    "text", ["gg", "that level was hard", "what music do you like", "i have homework", "my dog is so funny"]
)
def test_ordinary_chat_hits_nothing(text: str) -> None:
    assert find_hits(text) == []


def test_every_stage_has_indicators() -> None:
    names = indicator_names()
    for s in STAGES:
        assert any(n.startswith(s + ".") for n in names)


def test_normalise_strips_accents_case_and_letter_runs() -> None:
    assert normalise("  Où   HABITES-tu ?? sooooo ") == "ou habites-tu ?? soo"
    assert normalise("Don\u2019t") == "don't"


def test_hits_carry_spans_in_normalised_text() -> None:
    t = normalise("ok so are your parents home")
    (h,) = [h for h in find_hits(t, normalised=True) if h.stage == "probing"]
    assert t[h.start : h.end].startswith("are your parents")
