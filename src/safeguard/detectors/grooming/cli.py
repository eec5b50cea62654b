"""``safeguard grooming ...``: replay a conversation, train the default model, evaluate on corpora.

``score`` runs offline (the pure scorer, no database, no policy) so an analyst can see how risk builds
message by message for a file; the HTTP API is the way to get decisions. ``train`` rebuilds the
shipped model and exemplars from the synthetic corpus (same seed, same files). ``eval`` reports on
the synthetic held-out split, a JSONL corpus, PAN 2012 (author level, with its predator-id list) or
VTPAN/PANC datapacks (conversation level, with early-detection latency).
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from safeguard.terminal import make_console

app = typer.Typer(help="Grooming detection in conversations.", no_args_is_help=True)
console = make_console()
err = make_console(stderr=True)


class Format(StrEnum):
    synthetic = "synthetic"
    jsonl = "jsonl"
    pan2012 = "pan2012"
    vtpan = "vtpan"
    authors = "authors"


def _scorer(model: Path | None, exemplars: Path | None) -> Any:
    from safeguard.detectors.grooming.scorer import Scorer

    return Scorer.load(model, exemplars)


CACHE_HELP = (
    "authors: keep USE embeddings and fitted stage heads in this directory (JSON and .npy) and reuse them "
    "on the next run of the same corpus and recipe (the heads are the slow part)"
)


def _risk_style(r: float, thr: float) -> str:
    return "bold red" if r >= thr else "yellow" if r >= thr / 2 else "green"


@app.command("score")
def score(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="conversation JSONL (API message shape)"),
    model: Path | None = typer.Option(None, help="model JSON (default: the packaged model)"),
    exemplars: Path | None = typer.Option(None, help="exemplars JSON (default: packaged)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON lines instead of a table"),
) -> None:
    """Replay a conversation file and show how risk builds, message by message."""
    from safeguard.detectors.grooming.loaders import load_jsonl
    from safeguard.detectors.grooming.state import ConversationState, UserState
    from safeguard.errors import SafeguardError

    try:
        sc = _scorer(model, exemplars)
        convs = load_jsonl(file)
    except SafeguardError as exc:
        err.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(2) from exc
    thr = sc.model.threshold
    for conv in convs:
        state = ConversationState()
        users: dict[str, UserState] = {}
        table = Table(title=f"conversation {conv.id} (alert at {thr:.2f})")
        for col in ("#", "message", "sender", "text", "indicators", "conv. risk", "top stage"):
            table.add_column(col)
        analyses = sc.analyse([m.text for m in conv.messages])
        for i, (m, a) in enumerate(zip(conv.messages, analyses, strict=True), 1):
            user = users.setdefault(m.sender_id, UserState())
            msg = m.to_message()
            step = sc.apply(state, user, conv.id, msg, a)
            if as_json:
                typer.echo(
                    json.dumps(
                        {
                            "conversation_id": conv.id,
                            "message_id": m.message_id,
                            "indicators": list(step.indicators),
                            "conversation_risk": round(step.conversation_risk, 4),
                            "top_stage": step.top_stage,
                        }
                    )
                )
                continue
            r = step.conversation_risk
            table.add_row(
                str(i),
                m.message_id,
                m.sender_id,
                escape(m.text if len(m.text) <= 48 else m.text[:47] + "…"),
                ", ".join(step.indicators) or "-",
                f"[{_risk_style(r, thr)}]{r:.3f}[/]",
                step.top_stage or "-",
            )
        if not as_json:
            console.print(table)
            if state.alerted_at:
                console.print(f"[bold red]alert[/] after {state.alerted_at} messages")
            else:
                console.print("[green]no alert[/]")


@app.command("train")
def train(
    path: Path | None = typer.Argument(None, help="outside corpus to train on (default: the synthetic corpus)"),
    fmt: Format = typer.Option(Format.synthetic, "--format", help="synthetic, jsonl, pan2012 or vtpan"),
    predators: Path | None = typer.Option(None, help="PAN 2012 predator-id list (one author id per line)"),
    out: Path | None = typer.Option(None, help="output directory (default: the package's data/ folder)"),
    n: int = typer.Option(2400, help="synthetic conversations to generate"),
    seed: int = typer.Option(20261123, help="random seed (same seed, same model)"),
    encoder: str = typer.Option("hashed-ngram", help="synthetic: hashed-ngram (default) or use-multilingual"),
    templates: int = typer.Option(400, help="authors: template conversations added to training"),
    heldout_report: Path | None = typer.Option(
        None,
        exists=True,
        dir_okay=False,
        help="authors: take the held-out estimate stored in the model from this `eval --leave-one-author-out "
        "--json` report of the same corpus instead of running leave-one-author-out again",
    ),
    cache: Path | None = typer.Option(None, file_okay=False, help=CACHE_HELP),
) -> None:
    """Build the model and exemplars: from the synthetic corpus (reproducible) or an outside corpus."""
    from safeguard.detectors.grooming import loaders
    from safeguard.detectors.grooming.scorer import DATA_DIR
    from safeguard.detectors.grooming.training import build_default, train_on
    from safeguard.errors import SafeguardError

    if fmt == Format.synthetic:
        # without --out this rebuilds the packaged v1 model (model-v1.json), never the shipped model.json
        name = "model.json" if out else "model-v1.json"
        report = build_default(out or DATA_DIR, n=n, seed=seed, encoder=encoder, model_name=name)
        _print_report("held-out synthetic split", report)
        console.print(f"wrote {(out or DATA_DIR) / name} and exemplars.json")
        return
    if fmt == Format.authors and path is not None and out is None:
        out = DATA_DIR  # the packaged model is built from the author corpora
    if path is None or out is None:
        err.print(
            "[red]error:[/red] give the corpus file and --out (the packaged model is built from the synthetic corpus)"
        )
        raise typer.Exit(2)
    try:
        if fmt == Format.pan2012:
            if predators is None:
                err.print("[red]error:[/red] PAN 2012 needs --predators (the predator-id list)")
                raise typer.Exit(2)
            report = train_on(list(loaders.load_pan2012(path)), out, predators=loaders.load_predator_ids(predators))
        elif fmt == Format.vtpan:
            report = train_on(loaders.load_vtpan(path), out)
        elif fmt == Format.authors:
            from safeguard.detectors.grooming.training import build_from_authors

            heldout = json.loads(heldout_report.read_text(encoding="utf-8")) if heldout_report else None
            _use_cache(cache)
            report = build_from_authors(
                loaders.load_authors(path), out, templates=templates, seed=seed, heldout_report=heldout
            )
        else:
            report = train_on(loaders.load_jsonl(path), out)
    except SafeguardError as exc:
        err.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(2) from exc
    console.print_json(json.dumps(report))
    console.print(f"wrote {out / 'model.json'} and exemplars.json")


@app.command("eval")
def evaluate(
    path: Path | None = typer.Argument(None, help="corpus file (not needed for --format synthetic)"),
    fmt: Format = typer.Option(Format.synthetic, "--format", help="synthetic, jsonl, pan2012 or vtpan"),
    predators: Path | None = typer.Option(None, help="PAN 2012 predator-id list (one author id per line)"),
    model: Path | None = typer.Option(
        None, help="model JSON (default: packaged; with --leave-one-author-out the fixed model compared: v1)"
    ),
    exemplars: Path | None = typer.Option(None, help="exemplars JSON (default: packaged)"),
    threshold: float | None = typer.Option(None, help="alert threshold (default: the model's)"),
    n: int = typer.Option(2400, help="synthetic: corpus size (must match training to reproduce the split)"),
    seed: int = typer.Option(20261123, help="synthetic: seed"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
    loao: bool = typer.Option(
        False, "--leave-one-author-out", help="authors format: author-disjoint folds, old and new model side by side"
    ),
    bootstrap: int = typer.Option(1000, help="bootstrap resamples for the 95% intervals"),
    retrain: bool = typer.Option(
        True, help="leave-one-author-out: also train and test the USE stage-classifier model per fold"
    ),
    templates: int = typer.Option(400, help="leave-one-author-out: template conversations added to training"),
    cache: Path | None = typer.Option(None, file_okay=False, help=CACHE_HELP),
    variants: bool = typer.Option(
        False,
        "--variants",
        help="leave-one-author-out: also the ablations (exemplar affinity, classifier+affinity, no cross-fitting, "
        "no line head, no trajectory features); slow",
    ),
) -> None:
    """Precision, recall, F1, F0.5 and early-detection latency on a labelled corpus."""
    from safeguard.detectors.grooming import corpus, loaders, training
    from safeguard.errors import SafeguardError

    if loao:
        if fmt != Format.authors or path is None:
            err.print("[red]error:[/red] --leave-one-author-out needs a corpus in --format authors")
            raise typer.Exit(2)
        from safeguard.detectors.grooming.scorer import DATA_DIR

        # the packaged model was trained on every author, so the fixed model compared by default is v1
        _use_cache(cache)
        _eval_loao(
            _scorer(model or DATA_DIR / "model-v1.json", exemplars),
            path,
            bootstrap,
            as_json,
            retrain,
            templates,
            variants,
        )
        return
    sc = _scorer(model, exemplars)
    try:
        if fmt == Format.authors:
            if path is None:
                err.print("[red]error:[/red] give the corpus file or directory")
                raise typer.Exit(2)
            report = training.evaluate_conversations(sc, loaders.load_authors(path), threshold)
        elif fmt == Format.synthetic:
            convs = [training.to_loaded(c) for c in corpus.generate(n, seed) if c.split == "test"]
            report = training.evaluate_conversations(sc, convs, threshold)
        elif path is None:
            err.print("[red]error:[/red] give the corpus file")
            raise typer.Exit(2)
        elif fmt == Format.pan2012:
            if predators is None:
                err.print("[red]error:[/red] PAN 2012 needs --predators (the predator-id list)")
                raise typer.Exit(2)
            report = training.evaluate_authors(
                sc, loaders.load_pan2012(path), loaders.load_predator_ids(predators), threshold
            )
        elif fmt == Format.vtpan:
            report = training.evaluate_conversations(sc, loaders.load_vtpan(path), threshold)
        else:
            convs = loaders.load_jsonl(path)
            if any(c.label is None for c in convs):
                err.print("[red]error:[/red] every conversation needs a 'label' (0 or 1) to evaluate")
                raise typer.Exit(2)
            report = training.evaluate_conversations(sc, convs, threshold)
    except SafeguardError as exc:
        err.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(2) from exc
    if as_json:
        typer.echo(json.dumps(report))
    else:
        _print_report(f"{fmt.value}{' ' + str(path) if path else ''}", report)


def _use_cache(cache: Path | None) -> None:
    if cache is None:
        return
    import atexit

    from safeguard.detectors.grooming import training
    from safeguard.detectors.grooming.encoder import USEEncoder

    training.HEADS_CACHE_DIR = cache
    USEEncoder.load_memo(cache)
    atexit.register(USEEncoder.save_memo, cache)


def _eval_loao(
    sc: Any, path: Path, bootstrap: int, as_json: bool, retrain: bool, templates: int, variants: bool = False
) -> None:
    from safeguard.detectors.grooming import evaluation, loaders
    from safeguard.detectors.grooming.training import PREVIOUS_RECIPE, SHIPPED_RECIPE, VARIANTS
    from safeguard.errors import SafeguardError

    try:
        convs = loaders.load_authors(path)
        systems = {
            "fixed model, as is": evaluation.shipped(sc),
            "fixed model, threshold on validation": evaluation.shipped_validated(sc),
        }
        if retrain:
            for rec in (PREVIOUS_RECIPE, SHIPPED_RECIPE, *(VARIANTS if variants else ())):
                name = f"USE, {rec.label()}, retrained per fold"
                if rec == SHIPPED_RECIPE:
                    name += " (shipped recipe)"
                elif rec == PREVIOUS_RECIPE:
                    name += " (previous shipped recipe, v3)"
                systems[name] = evaluation.use_retrained(templates=templates, recipe=rec)
        report = evaluation.leave_one_author_out(convs, systems, bootstrap=bootstrap)
    except SafeguardError as exc:
        err.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(2) from exc
    if as_json:
        typer.echo(json.dumps(report))
        return
    cols = ("precision", "recall", "f0.5", "roc_auc", "in_time", "false_alerts_per_1000_benign", "stage_agreement")
    for name, res in report["systems"].items():
        table = Table(title=f"{name}: leave one author out on {path} (95% bootstrap CI)")
        table.add_column("test author")
        table.add_column("convs (grooming)", justify="right")
        table.add_column("thr", justify="right")
        for c in cols:
            table.add_column(c.replace("false_alerts_per_1000_benign", "FA/1000 benign"), justify="right")
        table.add_column("recall by language")
        table.add_column("sextortion rule: sextortion, benign")
        rows = [(a, f, f"{f['threshold']:.2f}") for a, f in res["folds"].items()]
        rows.append(("pooled", res["pooled"], "-"))
        for a, f, thr in rows:
            cells = []
            for c in cols:
                v, (lo, hi) = f[c]["value"], f[c]["ci95"]
                cells.append(
                    f"{v:.2f} [{lo:.2f}-{hi:.2f}]"
                    if c != "false_alerts_per_1000_benign"
                    else f"{v:.0f} [{lo:.0f}-{hi:.0f}]"
                )
            langs = ", ".join(
                f"{lang} {d['recall']:.2f}" for lang, d in f["recall_by_language"].items() if d["recall"] is not None
            )
            sx = f["sextortion_rule"]
            table.add_row(
                a,
                f"{f['conversations']} ({f['grooming']})",
                thr,
                *cells,
                langs,
                f"{sx['fired_on_sextortion']}/{sx['sextortion_conversations']}, {sx['fired_on_benign']}/{sx['benign']}",
            )
        console.print(table)


def _print_report(title: str, report: dict[str, Any]) -> None:
    table = Table(title=title)
    table.add_column("measure")
    table.add_column("value", justify="right")
    for k, v in report.items():
        table.add_row(k, str(v))
    console.print(table)
