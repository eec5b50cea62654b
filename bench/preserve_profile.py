"""Where a matching upload's time goes with and without ``preserve``, in process (a quick A/B aid).

    python bench/preserve_profile.py --width 4032 --pairs 80

The same two apps as bench/preserve_bench.py (one image size only), with timers around
``Engine.prepare`` and the preserve action's ``prepare`` and ``run``; prints the paired difference and
the medians of those timers. Run it with PYTHONPATH pointing at another checkout's ``src`` to compare
code versions on the same machine minutes apart (bench/results/2026-12-06-preserve-spool.txt).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import preserve_bench as pb  # noqa: E402
from bench._images import jpeg_bytes, photo_like  # noqa: E402

ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
ap.add_argument("--width", type=int, default=4032, choices=[640, 1920, 4032])
ap.add_argument("--pairs", type=int, default=60)
args = ap.parse_args()

from fastapi.testclient import TestClient  # noqa: E402

import safeguard.engine as E  # noqa: E402
from safeguard.api import create_app  # noqa: E402
from safeguard.banks import BankService  # noqa: E402
from safeguard.config import Settings  # noqa: E402
from safeguard.engine import Engine  # noqa: E402
from safeguard.evidence import MasterKey  # noqa: E402
from safeguard.evidence.action import Preserve  # noqa: E402
from safeguard.keys import KeyService  # noqa: E402
from safeguard.media import Media  # noqa: E402
from safeguard.signals.pdq import PDQSignal  # noqa: E402

T: dict[str, list[Any]] = {}


def wrap(obj, name, label):
    f = getattr(obj, name)

    def g(*a, **k):
        t = time.perf_counter()
        try:
            return f(*a, **k)
        finally:
            T.setdefault(label, []).append((time.perf_counter() - t) * 1000)

    setattr(obj, name, g)


wrap(Preserve, "prepare", "preserve.prepare")
wrap(Preserve, "run", "preserve.run")
wrap(E.Engine, "prepare", "engine.prepare")
W = args.width
H = {4032: 3024, 1920: 1080, 640: 480}[W]
data = jpeg_bytes(photo_like(W, H, seed=3), 90)
tmp = Path(tempfile.mkdtemp(prefix="r2prof_"))
kf = tmp / "vault.key"
MasterKey.generate().write_new(kf)
plain = pb.policy_without_preserve(tmp / "np.yaml")
apps = {}
for label, policy in (("without", str(plain)), ("with", "")):
    s = Settings(
        data_dir=str(tmp / label),
        policy_file=policy,
        vault_key_file=str(kf),
        run_worker=False,
        index_refresh_seconds=0.0,
    )
    e = Engine(s)
    b = BankService(e.db)
    b.create("csam", actor="b", default_category="A1")
    b.add_entry("csam", signal_type="pdq", value=PDQSignal().compute(Media.from_bytes(data))[0].value, actor="b")
    e.indexes.maybe_refresh()
    key = KeyService(e.db).create("platform", "b", actor="b")["key"]
    c = TestClient(create_app(s, engine=e))
    c.__enter__()
    apps[label] = (c, key, e)


def up(label, n):
    c, key, _ = apps[label]
    t = time.perf_counter()
    r = c.post(
        "/v1/scan",
        headers={"Authorization": f"Bearer {key}"},
        files={"file": ("u.jpg", data, "image/jpeg")},
        data={"user_id": f"u{n}"},
    )
    assert r.status_code == 200, r.text
    return (time.perf_counter() - t) * 1000


for i in range(10):
    up("with", i)
    up("without", i)
T.clear()
res = {"with": [], "without": []}
rng = random.Random(1)
P = args.pairs
for i in range(P):
    o = ["with", "without"]
    rng.shuffle(o)
    for label in o:
        T.setdefault("_cur", []).append(label)
        res[label].append(up(label, i))
d = statistics.median(a - b for a, b in zip(res["with"], res["without"], strict=True))
print(f"{W}: without {statistics.median(res['without']):.2f} with {statistics.median(res['with']):.2f} paired {d:+.2f}")
ep = T["engine.prepare"]
labels = T["_cur"]
for label in ("with", "without"):
    xs = [x for x, lab in zip(ep, labels, strict=True) if lab == label]
    print(" engine.prepare", label, f"{statistics.median(xs):.2f}")
for k in ("preserve.prepare", "preserve.run"):
    print(" ", k, f"{statistics.median(T[k]):.2f}")
for c, _, e in apps.values():
    c.__exit__(None, None, None)
    e.close()
