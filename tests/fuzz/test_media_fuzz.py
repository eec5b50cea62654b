"""Mutated media of every supported type (JPEG, PNG, GIF, WebP, BMP, TIFF, MP4, WebM): byte and bit
flips, truncations, inserted, deleted and duplicated spans, header fields and box sizes set to boundary
values. Each goes to ``POST /v1/scan`` (and every fourth to ``POST /v1/banks/{bank}/entries``): a 4xx
JSON error or a decision, never a 5xx."""

from __future__ import annotations

import random
import time
from collections import Counter

import pytest

from tests.fuzz.harness import MEDIA_FORMATS, FuzzTarget, mutate, problems
from tests.helpers.api import auth

# Pillow warns about the damage it skips over; that is the point here
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:PIL.TiffImagePlugin")

#: mutated files per type in CI (bench/fuzz.py runs as many as its time allows)
EXAMPLES = 150
#: the slowest answer accepted for one of these small files (a hang shows up here)
SLOW_SECONDS = 10.0


@pytest.mark.parametrize("fmt", MEDIA_FORMATS)
def test_mutated_media_never_5xx(target: FuzzTarget, seeds: dict[str, bytes], fmt: str) -> None:
    rng = random.Random(f"media-{fmt}")
    failures = []
    statuses: Counter[int] = Counter()
    for k in range(EXAMPLES):
        ops, data = mutate(seeds[fmt], rng)
        files = {"file": (f"x.{fmt.lower()}", data, "application/octet-stream")}
        t0 = time.perf_counter()
        if k % 4 == 3:
            r = target.client.post(
                f"/v1/banks/{target.bank}/entries", headers=auth(target.keys["moderator"]), files=files
            )
        else:
            r = target.client.post("/v1/scan", headers=auth(target.keys["platform"]), files=files)
        took = time.perf_counter() - t0
        statuses[r.status_code] += 1
        bad = problems(r.status_code, r.headers.get("content-type"), r.content)
        if took > SLOW_SECONDS:
            bad.append(f"took {took:.1f} s")
        if bad:
            failures.append((k, ops, bad, r.text[:200]))
    assert not failures, failures
    # the mutations reach the decoders: some files still decode to a decision, others are refused
    assert statuses[200] + statuses[201] > 0 and sum(n for c, n in statuses.items() if c >= 400) > 0, statuses


def test_unmutated_seeds_are_scanned(target: FuzzTarget, seeds: dict[str, bytes]) -> None:
    # the seeds themselves decode: the fuzz starts from files the service accepts
    for fmt, data in seeds.items():
        r = target.client.post(
            "/v1/scan", headers=auth(target.keys["platform"]), files={"file": ("x", data, "application/octet-stream")}
        )
        assert r.status_code == 200, (fmt, r.text)
        assert r.json()["verdict"] in ("allow", "review", "block"), fmt
