"""What ``preserve`` adds to a matching upload: the same upload with and without it, side by side.

    python bench/preserve_bench.py                      # SQLite, three image sizes, 100 pairs each
    python bench/preserve_bench.py --pairs 300 --postgres postgresql+psycopg://postgres@127.0.0.1:54329/pb

Two engines and apps in this process, each with its own data directory and database: one with the
packaged default policy (``known-csam``: block, case, preserve, webhook), one with the same policy less
``preserve``. Every upload is a benign generated photo-like JPEG whose PDQ hash is in a CSAM-kind bank,
posted as multipart to ``POST /v1/scan`` through the in-process client (multipart parsing, decoding,
hashing, matching, the decision's transaction with its case, outbox row and events; with ``preserve``
also AES-256-GCM under a fresh data key, the file written into the vault's spool beside the commit,
and the item's row). Uploads alternate
between the two apps, in random order within each pair, so drift on a shared machine hits both
columns alike. The table gives medians and 95th percentiles of the client-side latency, the median of
the per-pair differences (robust to the drift between pairs), what ``EvidenceVault.seal`` alone takes
for the same bytes (encrypt, hash, write: the old request path) and what ``EvidenceVault.spool`` takes
until its file is written (encrypt, write: what a request now waits for, beside its commit); the log is appended to ``bench/results/preserve_bench_<date>.txt``.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runs as ``python bench/preserve_bench.py`` from the repository root

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from bench._images import jpeg_bytes, photo_like  # noqa: E402

console = Console(record=True, width=150)
SIZES = [(640, 480), (1920, 1080), (4032, 3024)]


def policy_without_preserve(dest: Path) -> Path:
    from safeguard.policy import default_policy_path

    text = default_policy_path().read_text(encoding="utf-8")
    dest.write_text("\n".join(ln for ln in text.splitlines() if ln.strip() != "- preserve") + "\n", encoding="utf-8")
    return dest


@contextmanager
def postgres_db(url: str) -> Iterator[str]:
    from sqlalchemy import create_engine, text

    base, name = url.rsplit("/", 1)
    admin = create_engine(base + "/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        c.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=100, help="uploads per size and column")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--postgres", default="", help="a PostgreSQL URL; two databases NAME_with and NAME_without")
    ap.add_argument("--fsync", default="background", help="SAFEGUARD_VAULT_FSYNC for the 'with' app")
    ap.add_argument("--out", default="", help="log file (default bench/results/preserve_bench_<date>.txt)")
    args = ap.parse_args()

    from fastapi.testclient import TestClient

    from safeguard.api import create_app
    from safeguard.banks import BankService
    from safeguard.config import Settings
    from safeguard.engine import Engine
    from safeguard.evidence import MasterKey
    from safeguard.keys import KeyService
    from safeguard.media import Media
    from safeguard.signals.pdq import PDQSignal

    images = {size: jpeg_bytes(photo_like(*size, seed=i + 1), 90) for i, size in enumerate(SIZES)}
    tmp = Path(tempfile.mkdtemp(prefix="preserve_bench_"))
    key_file = tmp / "vault.key"
    MasterKey.generate().write_new(key_file)
    plain_policy = policy_without_preserve(tmp / "no-preserve.yaml")

    with (
        postgres_db(args.postgres + "_with") if args.postgres else _none() as pg_with,
        postgres_db(args.postgres + "_without") if args.postgres else _none() as pg_without,
    ):
        apps: dict[str, tuple[TestClient, str, Engine]] = {}
        for label, policy, db_url in (("without", str(plain_policy), pg_without), ("with", "", pg_with)):
            s = Settings(
                data_dir=str(tmp / label),
                database_url=db_url or "",
                policy_file=policy,
                vault_key_file=str(key_file),
                vault_fsync=args.fsync,
                run_worker=False,
                index_refresh_seconds=0.0,
            )
            engine = Engine(s)
            banks = BankService(engine.db)
            banks.create("csam", actor="bench", default_category="A1")
            for data in images.values():
                pdq = PDQSignal().compute(Media.from_bytes(data))[0]
                banks.add_entry("csam", signal_type="pdq", value=pdq.value, actor="bench")
            engine.indexes.maybe_refresh()
            key = KeyService(engine.db).create("platform", "bench", actor="bench")["key"]
            client = TestClient(create_app(s, engine=engine))
            client.__enter__()
            apps[label] = (client, key, engine)

        def upload(label: str, data: bytes, n: int) -> float:
            client, key, _ = apps[label]
            files = {"file": ("upload.jpg", data, "image/jpeg")}
            t = time.perf_counter()
            r = client.post(
                "/v1/scan", headers={"Authorization": f"Bearer {key}"}, files=files, data={"user_id": f"u{n}"}
            )
            took = (time.perf_counter() - t) * 1000
            body = r.json()
            assert r.status_code == 200 and body["verdict"] == "block", r.text
            names = [a["name"] for a in body["actions"]]
            assert ("preserve" in names) == (label == "with"), names
            return took

        rng = random.Random(1)
        results: dict[tuple[int, int], dict[str, list[float]]] = {}
        n = 0
        for size, data in images.items():
            for _ in range(args.warmup):
                for label in ("with", "without"):
                    n += 1
                    upload(label, data, n)
            got: dict[str, list[float]] = {"with": [], "without": []}
            for _ in range(args.pairs):
                order = ["with", "without"]
                rng.shuffle(order)
                for label in order:
                    n += 1
                    got[label].append(upload(label, data, n))
            results[size] = got

        # the vault's own work for one upload (encrypt under a fresh data key, hash, write the file)
        from safeguard.evidence import vault_of

        vault = vault_of(apps["with"][2])
        seal_ms = {}
        for size, data in images.items():
            times = []
            for _ in range(30):
                t = time.perf_counter()
                vault.seal(data)
                times.append((time.perf_counter() - t) * 1000)
            seal_ms[size] = statistics.median(times)
        # what the request waits for now: sealing into the spool (no hash of the file), beside the commit
        spool_ms: dict[tuple[int, int], float] = {}
        if hasattr(vault, "spool"):
            for size, data in images.items():
                times = []
                for _ in range(30):
                    t = time.perf_counter()
                    sealed = vault.spool(data, sha256="0" * 64)
                    if sealed.after is not None:
                        sealed.after.wait()
                    times.append((time.perf_counter() - t) * 1000)
                spool_ms[size] = statistics.median(times)

        from sqlalchemy import func, select

        from safeguard.store.models import EvidenceItem

        with apps["with"][2].db.read() as s:
            preserved = s.execute(select(func.count()).select_from(EvidenceItem)).scalar_one()
        for client, _, engine in apps.values():
            client.__exit__(None, None, None)
            engine.close()

    backend = "PostgreSQL" if args.postgres else "SQLite"
    table = Table(
        title=f"matching upload, POST /v1/scan multipart, {backend}, SAFEGUARD_VAULT_FSYNC={args.fsync}, "
        f"{args.pairs} pairs per size (ms, client side)"
    )
    cols = ("image", "bytes", "median without", "median with", "with/without", "paired Δ median", "Δ/without")
    for col in (*cols, "p95 without", "p95 with", "seal alone", "spool write"):
        table.add_column(col, justify="right")
    for (w, h), got in results.items():
        med_wo, med_w = statistics.median(got["without"]), statistics.median(got["with"])
        delta = statistics.median(a - b for a, b in zip(got["with"], got["without"], strict=True))
        table.add_row(
            f"{w}x{h} JPEG",
            f"{len(images[(w, h)]):,}",
            f"{med_wo:.2f}",
            f"{med_w:.2f}",
            f"{med_w / med_wo:.3f}",
            f"{delta:+.2f}",
            f"{delta / med_wo:+.1%}",
            f"{_p95(got['without']):.2f}",
            f"{_p95(got['with']):.2f}",
            f"{seal_ms[(w, h)]:.2f}",
            f"{spool_ms[(w, h)]:.2f}" if spool_ms else "n/a",
        )
    when = datetime.now(UTC)
    console.print(
        f"preserve_bench {when.isoformat(timespec='seconds')}  commit={_commit()}  cpus={os.cpu_count()}  "
        f"python={sys.version.split()[0]}"
    )
    console.print(table)
    console.print(
        f"items preserved in the 'with' run: {preserved} (every upload, warm-up included; seal alone: 30 more each)"
    )
    console.print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    out = Path(args.out) if args.out else ROOT / "bench" / "results" / f"preserve_bench_{when:%Y-%m-%d}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a", encoding="utf-8") as f:
        f.write(console.export_text() + "\n")
    console.print(f"log appended to {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10
        )
    except OSError:
        return "?"
    return out.stdout.strip() or "?"


def _p95(xs: list[float]) -> float:
    return sorted(xs)[max(0, round(0.95 * len(xs)) - 1)]


@contextmanager
def _none() -> Iterator[str]:
    yield ""


if __name__ == "__main__":
    main()
