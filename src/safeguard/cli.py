"""The ``safeguard`` command line. Every command works on the configured database directly and calls the
same engine and services as the HTTP API."""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import sys
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from safeguard import registry
from safeguard.config import SETTINGS, Settings
from safeguard.errors import SafeguardError, UnsupportedMedia
from safeguard.terminal import make_console

app = typer.Typer(
    help="Safeguard: a self-hostable child-safety engine.", no_args_is_help=True, pretty_exceptions_enable=False
)
keys_app = typer.Typer(help="API keys (shown once, stored hashed).", no_args_is_help=True)
bank_app = typer.Typer(help="Hash banks and their entries.", no_args_is_help=True)
events_app = typer.Typer(help="The append-only, hash-chained event log.", no_args_is_help=True)
webhooks_app = typer.Typer(help="Webhook endpoints for decisions.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
secrets_app = typer.Typer(
    help="Secrets at rest (sealed with the key in SAFEGUARD_SECRETS_KEY_FILE).", no_args_is_help=True
)
policy_app = typer.Typer(help="Policy files.", no_args_is_help=True)
users_app = typer.Typer(
    help="People who log in (moderator, lead, auditor, admin): password and TOTP.", no_args_is_help=True
)
app.add_typer(keys_app, name="keys")
app.add_typer(bank_app, name="bank")
app.add_typer(events_app, name="events")
app.add_typer(webhooks_app, name="webhooks")
app.add_typer(db_app, name="db")
app.add_typer(secrets_app, name="secrets")
app.add_typer(policy_app, name="policy")
app.add_typer(users_app, name="users")


def _mount_plugins() -> None:
    """Commands that plug in through the ``safeguard.commands`` entry points, Safeguard's own as an outside
    package's would: a ``typer.Typer`` becomes a command group named after its entry point, a function
    a command. The modules are imported here but keep their heavy imports (torch) inside the command."""
    for ep in sorted(entry_points(group="safeguard.commands"), key=lambda e: e.name):
        target = ep.load()
        if isinstance(target, typer.Typer):
            app.add_typer(target, name=ep.name)
        else:
            app.command(ep.name)(target)


_mount_plugins()

console = make_console()
err = make_console(stderr=True)


def actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no user name in some containers
        return "cli"


def settings() -> Settings:
    return Settings.from_env()


def engine(load_indexes: bool = False, start_actions: bool = False) -> Any:
    """The engine on the configured database; ``start_actions`` for commands that decide (serve, scan), so that
    record-keeping commands (keys, banks, events) do not need the evidence vault's key."""
    from safeguard.engine import Engine

    s = settings()
    warn_if_new_database(s)
    if start_actions:
        from safeguard.evidence import require_key

        require_key(s)  # the service never makes its own vault key (``safeguard vault init`` does)
    return Engine(s, load_indexes=load_indexes, start_actions=start_actions)


def warn_if_new_database(s: Settings) -> None:
    """Say so when a command is about to create a new SQLite database.

    The default data directory ``./var`` is relative to where a command runs: ``safeguard keys
    create`` run from another directory used to make a new, empty database silently, and its key
    then failed with 401 against the running service.
    """
    if s.database_url:
        return
    path = Path(s.data_dir).resolve() / "safeguard.db"
    if not path.exists():
        err.print(
            f"[yellow]note:[/] no database at {path}: creating a new one. SAFEGUARD_DATA_DIR is "
            f"{s.data_dir!r}{' (relative to this directory)' if not Path(s.data_dir).is_absolute() else ''}; "
            "run commands where the service runs, or set it to an absolute path."
        )


def banks() -> Any:
    from safeguard.banks import BankService

    return BankService(engine().db)


def progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    )


def emit_json(obj: Any) -> None:
    console.print_json(json.dumps(obj, default=str))


# -- service ------------------------------------------------------------------------------------
@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="listen address")] = None,
    port: Annotated[int | None, typer.Option(help="listen port")] = None,
    workers: Annotated[int | None, typer.Option(help="worker processes")] = None,
    balance: Annotated[
        str | None, typer.Option(help="spread connections over workers: dispatch (in turn) or reuseport (kernel hash)")
    ] = None,
) -> None:
    """Run the HTTP API (migrates the database first)."""
    from safeguard.api.workers import BALANCES
    from safeguard.api.workers import run as run_workers

    s = settings()
    e = engine(start_actions=True)  # refuses to start without what the policy's actions need (the vault key)
    e.indexes.load()
    e.indexes.save_snapshots()
    e.close()
    host = host or s.host
    port = port or s.port
    url = f"http://{host}:{port}"
    console.print(f"[bold green]Safeguard[/] on {url}  (database: {s.resolved_database_url})")
    console.print(f"  API docs:   {url}/docs   (OpenAPI: {url}/openapi.json)")
    console.print("  API key:    safeguard keys create --role platform   (also moderator, admin, auditor)")
    balance = balance or s.serve_balance
    if balance not in BALANCES:
        raise typer.BadParameter(f"--balance must be one of {', '.join(BALANCES)}", param_hint="--balance")
    # several workers: the parent hands connections to them in turn (or a socket each, SO_REUSEPORT)
    rc = run_workers(host, port, workers or s.workers, s.log_level, balance=balance)
    if rc:
        raise typer.Exit(rc)


@app.command()
def worker() -> None:
    """Run the webhook delivery worker on its own (when API processes run with SAFEGUARD_RUN_WORKER=0)."""
    from safeguard.ledger import CheckpointTimer
    from safeguard.webhook_store import seal_at_start
    from safeguard.workers.outbox import OutboxWorker

    e = engine()
    seal_at_start(e.db, e.settings, actor="worker")
    timer = CheckpointTimer(e.db, e.settings)
    timer.start()
    console.print("delivering webhooks from the outbox; Ctrl-C to stop")
    with contextlib.suppress(KeyboardInterrupt):
        OutboxWorker(e.db, e.settings).run_forever()
    timer.stop()


@app.command("settings")
def show_settings() -> None:
    """Print every setting, its environment variable, current value and meaning."""
    s = settings()
    t = Table("variable", "value", "default", "meaning")
    for st in SETTINGS:
        value = getattr(s, st.name)
        if "secret" in st.name and value:
            value = "********"
        t.add_row(st.env, str(value), str(st.default), st.help)
    console.print(t)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply database migrations."""
    from safeguard.store import Database

    s = settings()
    Database(s.resolved_database_url).migrate(s)
    console.print(f"database at {s.resolved_database_url} is up to date")


@policy_app.command("check")
def policy_check(
    path: Annotated[Path | None, typer.Argument(help="policy file (default: the configured one)")] = None,
) -> None:
    """Validate a policy file and print its rules."""
    from safeguard.policy import load_policy

    p = load_policy(path or (settings().policy_file or None))
    t = Table("rule", "when", "verdict", "actions", title=f"policy {p.version}")
    for r in p.rules:
        t.add_row(
            r.name,
            json.dumps(r.when.model_dump(exclude_none=True)),
            r.verdict.value,
            ", ".join(a.name for a in r.actions),
        )
    console.print(t)


# -- keys ---------------------------------------------------------------------------------------
@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option(help="platform, moderator, admin or auditor")],
    name: Annotated[str, typer.Option(help="a label for the key")] = "",
    tenant: Annotated[
        str, typer.Option(help="the platform the key acts for; a platform key sees only its tenant's records")
    ] = "default",
) -> None:
    """Create an API key. It is shown once: store it now."""
    from safeguard.keys import KeyService

    k = KeyService(engine().db).create(role, name, actor=actor(), tenant=tenant)
    err.print(f"[bold]{k['role']}[/] key {k['prefix']} ({k['name']}, tenant {k['tenant']}) created. It is shown once:")
    print(k["key"])


@keys_app.command("list")
def keys_list() -> None:
    """List keys (never the secrets)."""
    from safeguard.keys import KeyService

    t = Table("prefix", "name", "role", "tenant", "created", "revoked")
    for k in KeyService(engine().db).list():
        t.add_row(k["prefix"], k["name"], k["role"], k["tenant"], k["created_at"], k["revoked_at"] or "")
    console.print(t)


@keys_app.command("revoke")
def keys_revoke(prefix: str) -> None:
    """Revoke a key by its prefix."""
    from safeguard.keys import KeyService

    KeyService(engine().db).revoke(prefix, actor=actor())
    console.print(f"key {prefix} revoked")


# -- users --------------------------------------------------------------------------------------
def _users() -> Any:
    from safeguard.accounts import UserService

    return UserService(engine().db, settings())


def _print_credentials(creds: Any, what: str) -> None:
    err.print(f"[bold]{creds.role}[/] {creds.name} {what}. Shown once: hand them over in person.")
    print(f"password: {creds.password}")
    print(f"totp: {creds.totp_uri}")
    err.print("The password is for one login only: the first session must set a new one.")


@users_app.command("create")
def users_create(
    name: str,
    role: Annotated[str, typer.Option(help="moderator, lead, auditor or admin")],
) -> None:
    """Create a person's account; prints a one-time password and the TOTP secret as an otpauth:// URI."""
    _print_credentials(_users().create(name, role, actor=actor()), "created")


@users_app.command("list")
def users_list(as_json: Annotated[bool, typer.Option("--json", help="JSON lines")] = False) -> None:
    """List accounts (never their secrets)."""
    rows = _users().list()
    if as_json:
        for u in rows:
            print(json.dumps(u.to_dict()))
        return
    t = Table("name", "role", "created", "last login", "state")
    for u in rows:
        state = "disabled" if u.disabled else ("locked" if u.locked_until else "active")
        if u.password_temporary and state == "active":
            state = "active (one-time password)"
        t.add_row(
            u.name, u.role, u.created_at.isoformat(), u.last_login_at.isoformat() if u.last_login_at else "", state
        )
    console.print(t)


@users_app.command("disable")
def users_disable(name: str) -> None:
    """Disable an account and end its sessions."""
    _users().disable(name, actor=actor())
    console.print(f"user {name} disabled")


@users_app.command("enable")
def users_enable(name: str) -> None:
    """Enable a disabled account again."""
    _users().enable(name, actor=actor())
    console.print(f"user {name} enabled")


@users_app.command("reset")
def users_reset(name: str) -> None:
    """A new one-time password and TOTP secret (lost phone, forgotten password); unlocks, ends sessions."""
    _print_credentials(_users().reset(name, actor=actor()), "reset")


# -- banks --------------------------------------------------------------------------------------
def _parse_thresholds(values: list[str]) -> dict[str, int]:
    out = {}
    for v in values:
        name, _, num = v.partition("=")
        if not num.isdigit():
            raise typer.BadParameter(f"expected SIGNAL=DISTANCE, got {v!r}")
        out[name] = int(num)
    return out


@bank_app.command("create")
def bank_create(
    name: str,
    kind: Annotated[str, typer.Option(help="csam, ncii, terror or other")] = "csam",
    description: str = "",
    category: Annotated[str | None, typer.Option(help="default category for entries")] = None,
    threshold: Annotated[list[str], typer.Option(help="match threshold, e.g. pdq=31")] = [],  # noqa: B006
    review_threshold: Annotated[list[str], typer.Option(help="review threshold, e.g. pdq=40")] = [],  # noqa: B006
    dihedral: Annotated[bool, typer.Option(help="also match rotations and flips")] = False,
    shareable: bool = False,
) -> None:
    """Create a bank."""
    b = banks().create(
        name,
        actor=actor(),
        kind=kind,
        description=description,
        default_category=category,
        thresholds=_parse_thresholds(threshold),
        review_thresholds=_parse_thresholds(review_threshold),
        dihedral=dihedral,
        shareable=shareable,
    )
    console.print(f"bank [bold]{b['name']}[/] created (id {b['id']}, kind {b['kind']}, thresholds {b['thresholds']})")


@bank_app.command("list")
def bank_list() -> None:
    """List banks with their entry counts."""
    t = Table("id", "name", "kind", "entries", "enabled", "dihedral", "thresholds", "version")
    for b in banks().list_banks():
        t.add_row(
            str(b["id"]),
            b["name"],
            b["kind"],
            str(b["entry_count"]),
            str(b["enabled"]),
            str(b["dihedral"]),
            json.dumps(b["thresholds"]),
            str(b["version"]),
        )
    console.print(t)


@bank_app.command("show")
def bank_show(bank: str) -> None:
    """Show one bank."""
    emit_json(banks().describe(bank))


@bank_app.command("set")
def bank_set(
    bank: str,
    enabled: Annotated[bool | None, typer.Option("--enabled/--disabled")] = None,
    dihedral: Annotated[bool | None, typer.Option("--dihedral/--no-dihedral")] = None,
    threshold: Annotated[list[str], typer.Option(help="e.g. pdq=31")] = [],  # noqa: B006
    review_threshold: Annotated[list[str], typer.Option(help="e.g. pdq=40")] = [],  # noqa: B006
    kind: str | None = None,
    category: str | None = None,
) -> None:
    """Change a bank's settings."""
    changes: dict[str, Any] = {"enabled": enabled, "dihedral": dihedral, "kind": kind, "default_category": category}
    if threshold:
        changes["thresholds"] = _parse_thresholds(threshold)
    if review_threshold:
        changes["review_thresholds"] = _parse_thresholds(review_threshold)
    emit_json(banks().update(bank, actor=actor(), **{k: v for k, v in changes.items() if v is not None}))


def _iter_files(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files.extend(sorted(f for f in p.rglob("*") if f.is_file()))
        elif p.is_file():
            files.append(p)
        else:
            raise typer.BadParameter(f"{p} does not exist")
    return files


@bank_app.command("add")
def bank_add(
    bank: str,
    files: Annotated[list[Path], typer.Argument(help="media files or directories")],
    category: Annotated[str | None, typer.Option(help="category for the new entries")] = None,
    source: str = "moderator",
) -> None:
    """Hash files and add every signal they yield (SHA-256, MD5, PDQ) to a bank."""
    from safeguard.banks.sources.base import Row, signal_rows
    from safeguard.media import Media
    from safeguard.signals import compute_signals

    svc = banks()
    s = settings()
    svc.describe(bank)
    rows: list[Row] = []
    failed = 0
    paths = _iter_files(files)
    with progress() as prog:
        task = prog.add_task("hashing", total=len(paths))
        for p in paths:
            try:
                sigs = compute_signals(Media.from_bytes(p.read_bytes(), max_pixels=s.max_image_pixels))
                rows.extend(
                    signal_rows(
                        sigs,
                        category=category,
                        source=source,
                        provenance={"filename": p.name},
                        first_line=len(rows) + 1,
                    )
                )
            except SafeguardError as exc:
                failed += 1
                err.print(f"[red]{p}: {exc.code}: {exc.message}")
            prog.advance(task)
    res = svc.import_rows(bank, rows, actor=actor(), source=source)
    console.print(
        f"{len(paths) - failed} files hashed, {res.added_or_updated} entries added or updated"
        + (f", [red]{failed} files failed" if failed else "")
    )
    if failed:
        raise typer.Exit(1)


def _detect_format(path: Path, fmt: str | None) -> Any:
    from safeguard.banks.sources.base import HashListFormat

    if fmt is None:
        for name in registry.sources.names():
            cls = registry.sources.get(name)
            if path.suffix.lower() in cls.extensions:
                fmt = name
                break
    if fmt is None:
        raise typer.BadParameter(f"cannot tell the format of {path.name}; pass --format ({registry.sources.names()})")
    inst = registry.sources.get(fmt)()
    assert isinstance(inst, HashListFormat)
    return inst


@bank_app.command("import")
def bank_import(
    bank: str,
    path: Path,
    format: Annotated[str | None, typer.Option(help="csv or jsonl (default: from the extension)")] = None,
    source: Annotated[str, typer.Option(help="source recorded on each entry, e.g. ncmec")] = "",
    batch_size: int = 5000,
) -> None:
    """Import a hash list (CSV or JSONL); rejected rows are reported with their line numbers."""
    fmt = _detect_format(path, format)
    svc = banks()
    svc.describe(bank)
    total = sum(1 for _ in path.open("rb"))
    with path.open(encoding="utf-8-sig", errors="strict") as fp, progress() as prog:
        task = prog.add_task(f"importing {path.name}", total=total)
        try:
            res = svc.import_rows(
                bank,
                fmt.parse(fp),
                actor=actor(),
                source=source,
                batch_size=batch_size,
                progress=lambda n: prog.update(task, completed=min(total, prog.tasks[0].completed + n)),
            )
        except UnicodeDecodeError as exc:
            raise SafeguardError(f"{path}: not valid UTF-8 ({exc.reason})", code="invalid_encoding") from exc
        prog.update(task, completed=total)
    console.print(
        f"{res.rows_read} rows read: {res.added_or_updated} added or updated, {res.deleted} deleted, "
        f"{len(res.errors)} rejected"
    )
    if res.errors:
        t = Table("line", "code", "problem", title="rejected rows")
        for e in res.errors[:50]:
            t.add_row(str(e.line), e.code, e.message)
        err.print(t)
        if len(res.errors) > 50:
            err.print(f"... and {len(res.errors) - 50} more")
        raise typer.Exit(2)


@bank_app.command("export")
def bank_export(
    bank: str,
    format: Annotated[str, typer.Option(help="csv or jsonl")] = "jsonl",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="file (default: stdout)")] = None,
    include_disabled: bool = False,
) -> None:
    """Export a bank as a hash list."""
    fmt = registry.sources.get(format)()
    svc = banks()
    rows = svc.export(bank, include_disabled=include_disabled)
    if output is None:
        n = fmt.write(rows, sys.stdout)
    else:
        with output.open("w", encoding="utf-8") as fp:
            n = fmt.write(rows, fp)
    err.print(f"{n} entries exported")


@bank_app.command("entries")
def bank_entries(bank: str, limit: int = 50, after_id: int = 0) -> None:
    """List a bank's entries."""
    t = Table("id", "type", "value", "category", "source", "enabled", "opinion")
    for e in banks().list_entries(bank, limit=limit, after_id=after_id):
        t.add_row(
            str(e["id"]),
            e["signal_type"],
            e["value"],
            e["category"] or "",
            e["source"],
            str(e["enabled"]),
            e["opinion"],
        )
    console.print(t)


@bank_app.command("disable-entry")
def bank_disable_entry(entry_id: int, reason: str = "") -> None:
    """Disable an entry (it stops matching at once, in every process)."""
    e = banks().set_enabled(entry_id, False, actor=actor(), reason=reason)
    console.print(f"entry {e['id']} in bank {e['bank']} disabled")


@bank_app.command("enable-entry")
def bank_enable_entry(entry_id: int, reason: str = "") -> None:
    """Re-enable a disabled entry."""
    e = banks().set_enabled(entry_id, True, actor=actor(), reason=reason)
    console.print(f"entry {e['id']} in bank {e['bank']} enabled")


@bank_app.command("opinion")
def bank_opinion(
    entry_id: int, opinion: Annotated[str, typer.Argument(help="confirmed, disputed or none")], note: str = ""
) -> None:
    """Record an opinion on an entry (a disputed entry's matches go to review, not block)."""
    e = banks().add_opinion(entry_id, opinion, actor=actor(), note=note)
    console.print(f"entry {e['id']} in bank {e['bank']}: {e['opinion']}")


# -- scanning and hashing -----------------------------------------------------------------------
@app.command()
def scan(
    paths: Annotated[list[Path], typer.Argument(help="files or directories")],
    as_json: Annotated[bool, typer.Option("--json", help="one JSON decision per line")] = False,
    user_id: str | None = None,
) -> None:
    """Scan files against the banks and record a decision for each, as /v1/scan does.

    Files that are not media (no image or video signature) are skipped and counted. Exit status: 0 when
    every media file was scanned, whatever the verdicts; 1 when any could not be decoded (corrupt,
    truncated, too large)."""
    from safeguard.content import Content, ContentKind

    e = engine(load_indexes=True, start_actions=True)
    files = _iter_files(paths)
    counts = {"allow": 0, "review": 0, "block": 0, "error": 0, "skipped": 0}
    rows: list[tuple[str, str, str]] = []
    with progress() as prog:
        task = prog.add_task("scanning", total=len(files))
        for p in files:
            try:
                data = p.read_bytes()
                media = e.media_for(data)
                kind = ContentKind.VIDEO if media.is_video else ContentKind.IMAGE
                d = e.scan(
                    Content(kind=kind, data=data, content_id=str(p), user_id=user_id, filename=p.name),
                    actor=actor(),
                    media=media,
                )
                counts[d.verdict.value] += 1
                if as_json:
                    print(json.dumps({"path": str(p), **d.to_dict()}))
                if d.findings or d.verdict.value != "allow":
                    f = d.findings[0]
                    rows.append(
                        (
                            str(p),
                            d.verdict.value,
                            f"{f.bank} #{f.entry_id} {f.signal_type} d={f.distance} {f.category or ''}",
                        )
                    )
            except UnsupportedMedia as exc:  # not media at all (a text file beside the images): skipped
                counts["skipped"] += 1
                if as_json:
                    print(json.dumps({"path": str(p), "skipped": exc.to_dict()["error"]}))
            except SafeguardError as exc:
                counts["error"] += 1
                rows.append((str(p), "error", f"{exc.code}: {exc.message}"))
                if as_json:
                    print(json.dumps({"path": str(p), "error": exc.to_dict()["error"]}))
            prog.advance(task)
    if not as_json:
        if rows:
            t = Table("file", "verdict", "first finding", title="files with findings or errors")
            for r in rows:
                t.add_row(*r)
            console.print(t)
        s = Table(*counts, title=f"{len(files)} files scanned")
        s.add_row(*(str(n) for n in counts.values()))
        console.print(s)
    if counts["error"]:
        raise typer.Exit(1)


@app.command("hash")
def hash_files(
    paths: Annotated[list[Path], typer.Argument(help="files or directories")],
    format: Annotated[
        str,
        typer.Option(help="table; csv (sha256,md5,pdq,quality,path); pdq (pdq-photo-hasher: hash,quality,path); jsonl"),
    ] = "table",
    as_scan: Annotated[
        bool,
        typer.Option(
            "--as-scan", help="hash as /v1/scan does under SAFEGUARD_PDQ_DECODE (default: the reference decode)"
        ),
    ] = False,
) -> None:
    """Print SHA-256, MD5 and PDQ (hex, with quality) for each file.

    By default PDQ is the reference hash (a full decode), the value `safeguard bank add` stores; with
    --as-scan it is what a scan of the file records (the fast decode unless SAFEGUARD_PDQ_DECODE=exact)."""
    from safeguard.media import Media
    from safeguard.signals import compute_signals

    s = settings()
    failed = 0
    draft = s.hash_draft if as_scan else 0

    def results() -> Iterator[tuple[Path, dict[str, Any] | SafeguardError]]:
        for p in _iter_files(paths):
            try:
                media = Media.from_bytes(p.read_bytes(), max_pixels=s.max_image_pixels, hash_draft=draft)
                sigs = compute_signals(media)
                yield p, {g.type: g for g in sigs}
            except SafeguardError as exc:
                yield p, exc

    table = Table("file", "sha256", "md5", "pdq", "quality") if format == "table" else None
    if format == "csv":
        print("sha256,md5,pdq,quality,path")
    for p, r in results():
        if isinstance(r, SafeguardError):
            failed += 1
            err.print(f"[red]{p}: {r.code}: {r.message}")
            continue
        sha, md5, pdq = r.get("sha256"), r.get("md5"), r.get("pdq")
        pdq_v = pdq.value if pdq else ""
        q = str(pdq.quality) if pdq else ""
        if table is not None:
            table.add_row(str(p), sha.value if sha else "", md5.value if md5 else "", pdq_v, q)
        elif format == "csv":
            print(f"{sha.value if sha else ''},{md5.value if md5 else ''},{pdq_v},{q},{p}")
        elif format == "pdq":
            if pdq:
                print(f"{pdq_v},{q},{p}")
        elif format == "jsonl":
            print(json.dumps({"path": str(p), **{k: v.to_dict() for k, v in r.items()}}))
        else:
            raise typer.BadParameter(f"unknown format {format!r}")
    if table is not None:
        console.print(table)
    if failed:
        raise typer.Exit(1)


# -- events and webhooks ------------------------------------------------------------------------
@events_app.command("verify")
def events_verify(
    checkpoint: Annotated[
        list[Path] | None, typer.Option(help="a checkpoint file kept elsewhere (events checkpoint --out); repeatable")
    ] = None,
    public_key: Annotated[
        list[Path] | None,
        typer.Option(help="trusted signing public key (PEM); repeatable. Default: the signing key file's own"),
    ] = None,
    stored: Annotated[bool, typer.Option(help="also check the checkpoints stored in the database")] = True,
) -> None:
    """Check the hash chain, the chain against every checkpoint, and every decision row against its event;
    exit 1 if anything was edited, inserted or removed."""
    from safeguard import ledger

    s = settings()
    checkpoints = [cp for path in checkpoint or [] for cp in ledger.load_checkpoints(path)]
    if public_key:
        trusted = [ledger.load_public_key(p.read_bytes()) for p in public_key]
    elif ledger.signing_key_path(s).exists():
        trusted = [ledger.Signer.from_settings(s).public]
    else:
        trusted = []
    with engine().db.read() as sess:
        r = ledger.verify(sess, checkpoints=checkpoints, trusted=trusted, stored=stored)
    c = r.chain
    if c.ok:
        console.print(f"[green]event chain intact[/]: {c.checked} events verified")
    else:
        err.print(f"[red]event chain broken at seq {c.first_bad_seq}[/]: {c.problem} ({c.checked} events verified)")
    console.print(
        f"checkpoints: {r.checkpoints_checked} matched against the chain; decisions: {r.decisions_checked} checked"
        f" ({r.decisions_by_fields} recorded before row digests, checked field by field;"
        f" {r.decisions_without_event} pending or failed without an event)"
    )
    for p in r.problems:
        err.print(f"[red]problem[/] {p}")
    if r.more_problems:
        err.print(f"[red]... and {r.more_problems} more problems[/]")
    if not r.ok:
        raise typer.Exit(1)


@events_app.command("checkpoint")
def events_checkpoint(
    out: Annotated[Path | None, typer.Option(help="also write the signed checkpoint (JSON) to this file")] = None,
) -> None:
    """Sign the event log's head now, store the checkpoint, and print it (keep a copy elsewhere)."""
    from safeguard import ledger

    cp = ledger.checkpoint(engine().db, ledger.Signer.from_settings(settings()))
    text = json.dumps(cp.to_dict(), indent=2) + "\n"
    if out is not None:
        out.write_text(text, encoding="utf-8")
        err.print(f"checkpoint at seq {cp.seq} written to {out}")
    print(text, end="")


@events_app.command("export-public-key")
def events_export_public_key(
    out: Annotated[Path | None, typer.Option(help="write the PEM to this file instead of printing it")] = None,
) -> None:
    """Print the public half of the checkpoint signing key (PEM), for `events verify --public-key`."""
    from safeguard import ledger

    signer = ledger.Signer.from_settings(settings())
    pem = ledger.public_key_pem(signer.public).decode()
    if out is not None:
        out.write_text(pem, encoding="utf-8")
        err.print(f"public key {signer.key_id} written to {out}")
    else:
        print(pem, end="")


@events_app.command("list")
def events_list(after: int = 0, limit: int = 50, type: str | None = None) -> None:
    """List events."""
    from sqlalchemy import select

    from safeguard.store.models import Event

    q = select(Event).where(Event.seq > after).order_by(Event.seq).limit(limit)
    if type:
        q = q.where(Event.type == type)
    t = Table("seq", "time", "type", "actor", "subject", "hash")
    with engine().db.read() as s:
        for ev in s.execute(q).scalars():
            t.add_row(
                str(ev.seq),
                ev.created_at.isoformat(timespec="seconds"),
                ev.type,
                ev.actor,
                f"{ev.subject_kind}:{ev.subject_id}" if ev.subject_kind else "",
                ev.hash[:16],
            )
    console.print(t)


@webhooks_app.command("add")
def webhooks_add(
    url: str,
    secret: Annotated[str | None, typer.Option(help="default: generated")] = None,
    event: Annotated[list[str] | None, typer.Option(help="topics to send (default: all)")] = None,
) -> None:
    """Add a webhook endpoint; prints its signing secret once (stored sealed)."""
    import secrets as _secrets

    from safeguard.webhook_store import add_endpoint

    e = engine()
    secret = secret or _secrets.token_urlsafe(32)
    try:
        with e.db.write() as s:
            endpoint_id = add_endpoint(
                s, e.settings, url=url, secret=secret, topics=list(event or []), actor=actor()
            ).id
    except SafeguardError as exc:  # e.g. egress_refused: the URL is checked now and at every delivery
        err.print(f"[red]error[/red] {exc.code}: {exc.message}")
        raise typer.Exit(2) from None
    err.print(f"webhook {endpoint_id} added for {url}; signing secret (shown once):")
    print(secret)


@webhooks_app.command("remove")
def webhooks_remove(webhook_id: int) -> None:
    """Disable a webhook endpoint and cancel its pending deliveries."""
    from safeguard.webhook_store import remove_endpoint

    with engine().db.write() as s:
        n = remove_endpoint(s, webhook_id, actor=actor())
    console.print(f"webhook {webhook_id} removed; {n} pending deliveries cancelled")


@webhooks_app.command("list")
def webhooks_list() -> None:
    """List webhook endpoints and delivery counts."""
    from sqlalchemy import func, select

    from safeguard.store.models import OutboxMessage, WebhookEndpoint

    with engine().db.read() as s:
        t = Table("id", "url", "events", "enabled")
        for w in s.execute(select(WebhookEndpoint)).scalars():
            t.add_row(str(w.id), w.url, ",".join(w.events) or "all", str(w.enabled))
        console.print(t)
        counts = dict(s.execute(select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)).all())
    console.print(
        f"outbox: {counts.get('pending', 0)} pending, {counts.get('delivered', 0)} delivered, "
        f"{counts.get('dead', 0)} dead, {counts.get('cancelled', 0)} cancelled"
    )


@secrets_app.command("seal")
def secrets_seal(
    purpose: Annotated[str, typer.Option(help="what the secret is for: ncmec for SAFEGUARD_NCMEC_PASSWORD")] = "ncmec",
) -> None:
    """Seal a secret read from standard input (never an argument: shells keep history); prints the sealed value."""
    import sys

    from safeguard import secrets as _sealed

    value = sys.stdin.readline().rstrip("\r\n")
    if not value:
        err.print("nothing on standard input")
        raise typer.Exit(1)
    typer.echo(_sealed.seal(settings(), value, purpose=purpose))


@secrets_app.command("migrate")
def secrets_migrate() -> None:
    """Seal secrets stored in the clear by earlier versions (the service also does this when it starts)."""
    from safeguard.webhook_store import seal_plaintext_secrets

    e = engine()
    with e.db.write() as s:
        n = seal_plaintext_secrets(s, e.settings, actor=actor())
    console.print(f"{n} webhook secrets sealed")


def main() -> None:
    try:
        app()
    except SafeguardError as exc:
        err.print(f"[red]error[/] {exc.code}: {exc.message}")
        sys.exit(2)


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
