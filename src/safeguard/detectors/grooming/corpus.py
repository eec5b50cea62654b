"""A labelled, NON-EXPLICIT synthetic corpus: templates x slots x perturbations x four languages.

Positive conversations walk a sender of interest through a random subset of the grooming stages, in
the usual order, with ordinary chat in between. Negative conversations are the hard cases a word list
gets wrong: children chatting about games and swapping app handles, parents and teachers (secrets
about surprise parties, "are you home?", "I'll pick you up"), adults discussing ages and meeting for
coffee, friends of the same age, and adults newly contacting a child with nothing but ordinary chat.

Reproducible: everything comes from ``random.Random(seed)``. Stage templates are split three ways
by index (mod 4): 0 → exemplars, 1-2 → train/calibration conversations, 3 → test conversations, so
the similarity features are learnt on wording the exemplars do not contain, and held-out numbers
include paraphrases never seen in training.
Perturbations (typos, casing, filler) make the patterns miss sometimes, as real chat does.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from safeguard.detectors.grooming.indicators import STAGES
from safeguard.detectors.grooming.templates import HARD_NEGATIVES, NEUTRAL, REPLIES, SLOTS, STAGE_TEMPLATES

LANGS = ("en", "es", "fr", "de")
LANG_WEIGHTS = (0.55, 0.15, 0.15, 0.15)
STAGE_PROB = {
    "rapport": 0.75,
    "probing": 0.85,
    "secrecy": 0.65,
    "isolation": 0.65,
    "gifts": 0.45,
    "photos": 0.55,
    "sexual": 0.15,
    "pressure": 0.2,
    "meeting": 0.45,
}
SPLITS = (("train", 0.6), ("calib", 0.15), ("test", 0.25))


@dataclass
class Conversation:
    id: str
    label: int
    lang: str
    scenario: str
    split: str
    focus: str  # the sender whose behaviour the label is about
    minors_before: int  # distinct minors the focus sender contacted before (for the "many children" context)
    messages: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "label": self.label,
            "lang": self.lang,
            "scenario": self.scenario,
            "split": self.split,
            "focus": self.focus,
            "minors_before": self.minors_before,
            "messages": self.messages,
        }


def template_group(i: int) -> str:
    """Templates are split three ways so that no split sees another's wording: exemplars, train, test."""
    return ("exemplar", "train", "train", "test")[i % 4]


def stage_templates(lang: str, stage: str, split: str) -> list[str]:
    """Templates for ``split`` ("exemplar", or a conversation split: train/calib use "train")."""
    group = "train" if split == "calib" else split
    ts = STAGE_TEMPLATES[lang][stage]
    picked = [t for i, t in enumerate(ts) if template_group(i) == group]
    return picked or ts  # very short lists (under four templates) are shared


def fill(rng: random.Random, lang: str, template: str) -> str:
    slots = SLOTS[lang]
    return template.format(**{k: rng.choice(v) for k, v in slots.items()})


def perturb(rng: random.Random, text: str) -> str:
    r = rng.random()
    if r < 0.15 and len(text) > 6:  # a typo: swap two adjacent letters
        i = rng.randrange(1, len(text) - 2)
        text = text[:i] + text[i + 1] + text[i] + text[i + 2 :]
    elif r < 0.25:
        text = text.rstrip("?!.") + rng.choice([" lol", " :)", " haha", " xx", "!!"])
    elif r < 0.32:
        text = text.upper() if rng.random() < 0.3 else text.capitalize()
    return text


class _Builder:
    def __init__(self, rng: random.Random, conv: Conversation, a: dict[str, Any], b: dict[str, Any], prior: bool):
        self.rng, self.conv, self.a, self.b, self.prior = rng, conv, a, b, prior
        self.t = 1_700_000_000.0 + rng.randrange(0, 10_000_000)

    def say(self, who: str, text: str, stage: str | None = None) -> None:
        sender, other = (self.a, self.b) if who == "a" else (self.b, self.a)
        self.t += self.rng.uniform(5, 240)
        self.conv.messages.append(
            {
                "message_id": f"{self.conv.id}-m{len(self.conv.messages) + 1}",
                "sender": dict(sender),
                "recipients": [{"id": other["id"], "age_band": other["age_band"]}],
                "text": perturb(self.rng, text),
                "sent_at": self.t,
                "prior_contact": self.prior,
                "stage": stage,
            }
        )

    def chatter(self, lo: int, hi: int) -> None:
        lang = self.conv.lang
        for _ in range(self.rng.randint(lo, hi)):
            who = self.rng.choice("ab")
            pool = NEUTRAL[lang] if who == "a" or self.rng.random() < 0.5 else REPLIES[lang]
            self.say(who, fill(self.rng, lang, self.rng.choice(pool)))


def _person(rng: random.Random, pid: str, band: str, acct: int | None) -> dict[str, Any]:
    return {"id": pid, "age_band": band, "account_age_days": acct}


def _positive(rng: random.Random, cid: str, lang: str, split: str) -> Conversation:
    band = rng.choices(["adult", "unknown", "teen"], weights=[0.55, 0.35, 0.10])[0]
    acct = rng.randint(0, 29) if rng.random() < 0.6 else rng.randint(30, 2000)
    minor_band = rng.choices(["child", "teen", "unknown"], weights=[0.5, 0.4, 0.1])[0]
    minors_before = rng.choice([0, 0, 0, 1, 2, 4, 8, 15])
    conv = Conversation(cid, 1, lang, "grooming", split, f"{cid}-a", minors_before)
    a = _person(rng, f"{cid}-a", band, acct)
    b = _person(rng, f"{cid}-b", minor_band, rng.randint(30, 900))
    bl = _Builder(rng, conv, a, b, prior=rng.random() < 0.1)
    stages = [s for s in STAGES if rng.random() < STAGE_PROB[s]]
    while len(stages) < 2:
        s = rng.choice(STAGES[:6])
        if s not in stages:
            stages.append(s)
    stages.sort(key=STAGES.index)
    bl.chatter(1, 4)
    for s in stages:
        for _ in range(rng.choice([1, 1, 2])):
            bl.say("a", fill(rng, lang, rng.choice(stage_templates(lang, s, split))), stage=s)
            bl.say("b", rng.choice(REPLIES[lang]))
        bl.chatter(0, 3)
    return conv


_NEG_SCENARIOS = ("gamers", "parent", "teacher", "adults", "friends", "new_adult_contact")


def _negative(rng: random.Random, cid: str, lang: str, split: str) -> Conversation:
    scen = rng.choice([s for s in _NEG_SCENARIOS if s in HARD_NEGATIVES[lang] or s == "new_adult_contact"])
    if scen in ("gamers", "friends"):
        band_a = rng.choice(["child", "teen"])
        band_b, prior, acct, before = band_a, rng.random() < 0.5, rng.randint(10, 1500), 0
    elif scen == "parent":
        band_a, band_b, prior, acct, before = "adult", rng.choice(["child", "teen"]), True, rng.randint(100, 3000), 1
    elif scen == "teacher":
        band_a, band_b, prior, acct, before = (
            "adult",
            rng.choice(["child", "teen"]),
            rng.random() < 0.6,
            rng.randint(30, 3000),
            rng.choice([5, 15, 25]),
        )
    elif scen == "adults":
        band_a, band_b, prior, acct, before = (
            rng.choice(["adult", "unknown"]),
            rng.choice(["adult", "unknown"]),
            rng.random() < 0.5,
            rng.randint(0, 3000),
            0,
        )
    else:  # an adult (coach, game helper, new friend of the family) newly talks to a child, benignly
        acct = rng.randint(0, 29) if rng.random() < 0.5 else rng.randint(30, 1500)
        band_a, band_b, prior, before = (
            rng.choice(["adult", "unknown"]),
            rng.choice(["child", "teen"]),
            False,
            rng.choice([0, 0, 1, 3, 10]),
        )
    conv = Conversation(cid, 0, lang, scen, split, f"{cid}-a", before)
    a = _person(rng, f"{cid}-a", band_a, acct)
    b = _person(rng, f"{cid}-b", band_b, rng.randint(30, 900))
    bl = _Builder(rng, conv, a, b, prior)
    pool_name = scen if scen != "new_adult_contact" else rng.choice(["gamers", "friends", "coach", "coach"])
    pool = HARD_NEGATIVES[lang].get(pool_name) or HARD_NEGATIVES["en"][pool_name]
    bl.chatter(1, 4)
    n_hard = rng.randint(1, 4)
    for _ in range(n_hard):
        bl.say("a", fill(rng, lang, rng.choice(pool)))
        bl.say("b", rng.choice(REPLIES[lang]))
        bl.chatter(0, 4)
    return conv


def generate(n: int = 2400, seed: int = 20261123) -> list[Conversation]:
    """``n`` conversations, half positive, split train/calib/test by position (reproducible)."""
    rng = random.Random(seed)
    convs = []
    cut1 = int(n * SPLITS[0][1])
    cut2 = cut1 + int(n * SPLITS[1][1])
    for i in range(n):
        split = "train" if i < cut1 else "calib" if i < cut2 else "test"
        lang = rng.choices(LANGS, weights=LANG_WEIGHTS)[0]
        cid = f"syn{i:05d}"
        convs.append(_positive(rng, cid, lang, split) if i % 2 == 0 else _negative(rng, cid, lang, split))
    return convs


def exemplars(seed: int = 7) -> dict[str, list[str]]:
    """Per-stage exemplar sentences: the exemplar-group templates of every language, slots filled."""
    rng = random.Random(seed)
    out: dict[str, list[str]] = {s: [] for s in STAGES}
    for lang in LANGS:
        for s in STAGES:
            for t in stage_templates(lang, s, "exemplar"):
                out[s].append(fill(rng, lang, t))
    return out
