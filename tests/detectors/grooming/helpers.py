"""Helpers for grooming tests: benign, non-explicit messages only."""

from __future__ import annotations

from safeguard.detectors.grooming.scorer import Message


def msg(
    i: int,
    text: str,
    *,
    sender: str = "adult1",
    band: str = "adult",
    acct: int | None = 3,
    to: tuple[tuple[str, str], ...] = (("kid1", "child"),),
    prior: bool = False,
    t0: float = 1_000.0,
) -> Message:
    return Message(f"m{i}", sender, text, t0 + 10 * i, band, acct, to, prior)


GROOMING_LINES = [
    "hey, you play minecraft?",
    "you're so mature for your age",
    "how old are you?",
    "are your parents home right now?",
    "this is our little secret ok",
    "add me on snapchat",
    "i'll send you some robux",
    "send me a pic",
    "we should meet in person",
]
BENIGN_LINES = [
    "hey, you play minecraft?",
    "that level was hard",
    "gg",
    "did you see the new update",
    "i have homework",
    "what music do you like",
]
