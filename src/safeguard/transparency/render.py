"""The published forms of a report: one self-contained HTML page and a CSV in the shape of the EU's
harmonised transparency template. Both show suppressed figures as "fewer than N" (report.py)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Sequence
from datetime import datetime, time, timedelta
from html import escape
from typing import Any

from safeguard.transparency.charts import bar_chart
from safeguard.transparency.figures import HISTOGRAM_LABELS
from safeguard.transparency.report import pointer_key

__all__ = ["CSV_COLUMNS", "csv_rows", "to_csv", "to_html", "to_json"]


class _View:
    """Figures by JSON pointer, with suppression applied."""

    def __init__(self, report: dict[str, Any]) -> None:
        self.report = report
        self.min_count = int(report["inputs"]["min_count"])
        self.suppressed = set(report.get("suppressed") or [])

    def raw(self, path: str) -> Any:
        node: Any = self.report
        for part in path.strip("/").split("/"):
            key = part.replace("~1", "/").replace("~0", "~")
            node = node[int(key)] if isinstance(node, list) else node[key]
        return node

    def hidden(self, path: str) -> bool:
        return path in self.suppressed

    def text(self, path: str) -> str:
        if self.hidden(path):
            return f"fewer than {self.min_count}"
        v = self.raw(path)
        if v is None:
            return "n/a"
        if isinstance(v, float):
            return f"{v:g}"
        return str(v)


def _duration(seconds: Any) -> str:
    if not isinstance(seconds, int | float):
        return str(seconds)
    s = float(seconds)
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    if s < 172800:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} d"


def _period_text(start: str, end: str) -> str:
    """Whole days as ``first to last`` (both included); other times as given, the end exclusive."""
    a, b = datetime.fromisoformat(start), datetime.fromisoformat(end)
    if a.time() == b.time() == time(0):
        return f"{a:%Y-%m-%d} to {b - timedelta(days=1):%Y-%m-%d} (UTC, both days included)"
    return f"{start} to {end} (exclusive)"


# -- HTML -----------------------------------------------------------------------------------------
CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:60rem;padding:1rem 1.5rem;
color:#1d1d1d;background:#fff}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.5rem 0 1rem;min-width:24rem}
th,td{border:1px solid #ccc;padding:.25rem .6rem;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}
th{background:#f2f2f2}.meta{color:#555;font-size:.9rem}figure{margin:1rem 0}figcaption{font-size:.9rem;color:#444}
code{font-size:.85rem;word-break:break-all}
"""


def _table(caption: str, head: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    out = [f"<table><caption>{escape(caption)}</caption><thead><tr>"]
    out += [f"<th>{escape(h)}</th>" for h in head]
    out.append("</tr></thead><tbody>")
    for r in rows:
        out.append("<tr>" + f"<th>{escape(r[0])}</th>" + "".join(f'<td class="n">{escape(c)}</td>' for c in r[1:]))
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _pairs(v: _View, path: str, label: str = "") -> list[tuple[str, str]]:
    node = v.raw(path)
    return [(label + k, v.text(f"{path}/{pointer_key(k)}")) for k in node]


def _named(v: _View, base: str, *keys: str) -> list[tuple[str, str]]:
    """Rows ``(key, figure)`` for the named figures under ``base``."""
    return [(k, v.text(f"{base}/{k}")) for k in keys]


def _stats_table(caption: str, counted: str, rows: Sequence[tuple[str, str, str, str]]) -> str:
    return _table(caption, ("", counted, "Median", "90th percentile"), rows)


def _stats_rows(v: _View, name: str, path: str) -> list[tuple[str, str, str, str]]:
    def seconds(p: str) -> str:
        return v.text(p) if v.hidden(p) or v.raw(p) is None else _duration(v.raw(p))

    return [(name, v.text(f"{path}/n"), seconds(f"{path}/median_seconds"), seconds(f"{path}/p90_seconds"))]


def _chart(v: _View, title: str, path: str, labels: Sequence[str], colour: str, css_class: str) -> str:
    """A bar chart of the list at ``path``, its suppressed bars drawn as such, in a captioned figure."""
    values = v.raw(path)
    hidden = [v.hidden(f"{path}/{i}") for i in range(len(values))]
    chart = bar_chart(title, list(labels), values, hidden, v.min_count, colour)
    return f'<figure class="{css_class}">{chart}<figcaption>{escape(title)}</figcaption></figure>'


def _series_chart(v: _View, title: str, key: str, colour: str) -> str:
    buckets = v.raw("/figures/over_time/buckets")
    return _chart(v, title, f"/figures/over_time/{key}", buckets, colour, "over-time")


def _histogram_chart(v: _View, title: str, path: str) -> str:
    return _chart(v, title, path, HISTOGRAM_LABELS, "#73a857", "distribution")


def to_html(report: dict[str, Any], title: str = "Transparency report") -> str:
    """One page, no script, no external resource: styles inline, charts as inline SVG."""
    v = _View(report)
    f = "/figures"
    inputs, rng = report["inputs"], report["event_range"]
    small = (
        f"Counts from 1 to {v.min_count - 1} are shown as &ldquo;fewer than {v.min_count}&rdquo;."
        if v.min_count > 1
        else "No count is suppressed."
    )
    bucket = "day" if v.raw("/figures/over_time/bucket_days") == 1 else "week"
    body = [
        f"<h1>{escape(title)}</h1>",
        f'<p class="meta">Period: {escape(_period_text(inputs["from"], inputs["to"]))}. '
        f'<span class="scope">Scope: {escape(str(report.get("scope") or "the whole instance"))}.</span> {small} '
        "Every figure is computed from "
        f"the hash-chained event log, events {escape(str(rng['first_seq']))} to {escape(str(rng['last_seq']))} "
        f"(last hash <code>{escape(str(rng['last_hash']))}</code>); generated {escape(report['generated_at'])}.</p>",
        "<h2>Content scanned</h2>",
        _table(
            "Decisions recorded, by kind of content",
            ("Kind", "Decisions"),
            [
                *_pairs(v, f"{f}/content_scanned/decisions_by_kind"),
                ("Total", v.text(f"{f}/content_scanned/decisions_total")),
            ],
        ),
        _table(
            "Also received",
            ("What", "Count"),
            [
                ("Live stream frames sampled", v.text(f"{f}/content_scanned/stream_frames_sampled")),
                ("Chat messages received", v.text(f"{f}/content_scanned/chat_messages_received")),
            ],
        ),
        _table("Verdicts", ("Verdict", "Decisions"), _pairs(v, f"{f}/verdicts")),
        "<h2>Matches</h2>",
        _table("Matches by source bank", ("Bank", "Matches"), _pairs(v, f"{f}/matches/by_bank")),
        _table("Matches by signal type", ("Signal", "Matches"), _pairs(v, f"{f}/matches/by_signal_type")),
        _table("Matches by category", ("Category", "Matches"), _pairs(v, f"{f}/matches/by_category")),
        _table(
            "List quality: matches in cases decided in the period, and the share moderators found not violating",
            ("Bank", "Matches reviewed", "Not violating", "Share not violating"),
            [
                (
                    bank,
                    v.text(f"{f}/list_quality/{pointer_key(bank)}/reviewed"),
                    v.text(f"{f}/list_quality/{pointer_key(bank)}/not_violating"),
                    v.text(f"{f}/list_quality/{pointer_key(bank)}/share_not_violating"),
                )
                for bank in v.raw(f"{f}/list_quality")
            ],
        ),
        "<h2>Human review</h2>",
        _table(
            "Cases",
            ("", "Count"),
            [
                *_pairs(v, f"{f}/cases/opened_by_queue", "opened: "),
                ("opened: total", v.text(f"{f}/cases/opened_total")),
                *_pairs(v, f"{f}/cases/decided_by_outcome", "decided: "),
                ("decided: total", v.text(f"{f}/cases/decided_total")),
                ("decisions by a lead's override", v.text(f"{f}/cases/decided_by_override")),
            ],
        ),
        _stats_table(
            "Time to action",
            "Cases",
            [
                *_stats_rows(v, "Case opened to final decision, all queues", f"{f}/time_to_action"),
                *(
                    row
                    for q in v.raw(f"{f}/time_to_action_by_queue")
                    for row in _stats_rows(v, f"queue {q}", f"{f}/time_to_action_by_queue/{pointer_key(q)}")
                ),
            ],
        ),
        _histogram_chart(
            v, "Time to action: cases by time from opening to final decision", f"{f}/time_to_action_histogram"
        ),
        "<h2>Reports to law enforcement</h2>",
        _table(
            "Reports",
            ("", "Count"),
            [
                *_named(v, f"{f}/law_enforcement_reports", "drafted", "submitted"),
                *_pairs(v, f"{f}/law_enforcement_reports/submitted_by_transport", "submitted via "),
            ],
        ),
        _stats_table(
            "Detection to submission",
            "Reports",
            _stats_rows(v, "Case opened to report submitted", f"{f}/law_enforcement_reports/detection_to_submission"),
        ),
        _histogram_chart(
            v,
            "Reports by time from detection to submission",
            f"{f}/law_enforcement_reports/detection_to_submission_histogram",
        ),
        *_nca_html(v, f"{f}/law_enforcement_reports/nca_referrals"),
        "<h2>Grooming interventions</h2>",
        _table("Interventions", ("", "Count"), _pairs(v, f"{f}/grooming_interventions")),
        "<h2>Live streams</h2>",
        _table("Live streams", ("", "Count"), _named(v, f"{f}/live_streams", "watched", "terminated")),
        _stats_table(
            "Time to terminate",
            "Streams",
            _stats_rows(v, "Registration to termination request", f"{f}/live_streams/time_to_terminate"),
        ),
        "<h2>User reports</h2>",
        _table(
            "User reports",
            ("", "Count"),
            [
                *_named(v, f"{f}/user_reports", "received", "actioned"),
                *_pairs(v, f"{f}/user_reports/by_reason", "reason: "),
            ],
        ),
        f"<h2>Over time (per {bucket})</h2>",
        _series_chart(v, f"Content scanned per {bucket}", "scanned", "#3465a4"),
        _series_chart(v, f"Matches per {bucket}", "matches", "#cc0000"),
        _series_chart(v, f"Blocked per {bucket}", "blocked", "#75507b"),
        _series_chart(v, f"Cases decided per {bucket}", "cases_decided", "#c17d11"),
        "<h2>Not yet available</h2>",
        "<ul>" + "".join(f"<li>{escape(t)}</li>" for t in report.get("not_available", {}).values()) + "</ul>",
    ]
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
        'img-src data:">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>" + "\n".join(body) + "</body></html>\n"
    )


def _nca_html(v: _View, path: str) -> list[str]:
    """NCA referrals (absent from reports made before they were counted: those show nothing here)."""
    try:
        v.raw(path)
    except KeyError:
        return []
    return [
        _table(
            "Referrals to the UK National Crime Agency (signed package made)",
            ("", "Count"),
            [("packages made", v.text(f"{path}/packages_made")), ("reports referred", v.text(f"{path}/referred"))],
        ),
        _table(
            "Detection to NCA referral",
            ("", "Reports", "Median", "90th percentile"),
            _stats_rows(v, "Case opened to first package made", f"{path}/detection_to_referral"),
        ),
    ]


def to_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, sort_keys=False) + "\n"


# -- CSV: the EU harmonised template (Implementing Regulation (EU) 2024/2835) -------------------
CSV_COLUMNS = ("template_section", "template_field", "category", "breakdown", "value", "safeguard_figure")
CSAM = "Protection of minors: child sexual abuse material"
GROOMING = "Protection of minors: grooming / sexual enticement of minors"
MINORS = "Protection of minors"
OWN = "Own-initiative content moderation (Art. 15(1)(c))"
AUTOMATED = "Use of automated means (Art. 15(1)(e))"
NOTICES = "Notices received (Art. 16)"
GENERAL = "General information"
EXTRA = "Not in the template (Safeguard)"


Row = tuple[str, str, str, str, str, str]
ASSESSED = "Items of content assessed by automated means"
DETECTED = "Detections by automated means"
RECEIVED = "Number of notices received"
SUBMITTED = "Reports to law enforcement submitted"
REMOVED = "Restrictions: removal or disabling of access"
TO_DECISION = "case opened to final decision"


def csv_rows(report: dict[str, Any]) -> Iterator[Row]:
    v = _View(report)
    f = "/figures"

    def row(section: str, field: str, category: str, breakdown: str, path: str) -> Row:
        text = v.text(path)
        if not v.hidden(path) and path.endswith("_seconds") and isinstance(v.raw(path), float):
            text = f"{v.raw(path):.0f}"
        return (section, field, category, breakdown, text, path)

    def each(section: str, field: str, category: str, label: str, path: str, leaf: str = "") -> Iterator[Row]:
        """One row per key of the mapping at ``path``, broken down as ``label: key``."""
        for key in v.raw(path):
            yield row(section, field, category, f"{label}: {key}", f"{path}/{pointer_key(key)}{leaf}")

    def quantiles(field: str, path: str) -> Iterator[Row]:
        for q in ("median", "p90"):
            yield row(EXTRA, f"{field}, {q} (seconds)", CSAM, "", f"{path}/{q}_seconds")

    inputs = report["inputs"]
    yield (GENERAL, "Start of the reporting period", "", "", inputs["from"], "/inputs/from")
    yield (GENERAL, "End of the reporting period (exclusive)", "", "", inputs["to"], "/inputs/to")
    if inputs.get("territory") is not None:
        yield (GENERAL, "Member State / territory of the recipients", "", "", inputs["territory"], "/inputs/territory")
    if inputs.get("tenant") is not None:
        yield (EXTRA, "Tenant (service) reported on", "", "", inputs["tenant"], "/inputs/tenant")
    yield from each(AUTOMATED, ASSESSED, MINORS, "content type", f"{f}/content_scanned/decisions_by_kind")
    yield row(AUTOMATED, ASSESSED, MINORS, "live stream frames", f"{f}/content_scanned/stream_frames_sampled")
    yield row(AUTOMATED, ASSESSED, GROOMING, "chat messages", f"{f}/content_scanned/chat_messages_received")
    yield from each(AUTOMATED, DETECTED, CSAM, "source", f"{f}/matches/by_bank")
    yield from each(AUTOMATED, DETECTED, CSAM, "technology", f"{f}/matches/by_signal_type")
    yield from each(AUTOMATED, DETECTED, CSAM, "category", f"{f}/matches/by_category")
    yield from each(
        AUTOMATED,
        "Indicator of accuracy: share of automated detections overturned by human review",
        CSAM,
        "source",
        f"{f}/list_quality",
        "/share_not_violating",
    )
    yield row(OWN, f"{REMOVED} (automated decision)", MINORS, "verdict: block", f"{f}/verdicts/block")
    yield row(OWN, "Items referred to human review", MINORS, "verdict: review", f"{f}/verdicts/review")
    yield from each(OWN, "Decisions after human review", MINORS, "outcome", f"{f}/cases/decided_by_outcome")
    yield row(OWN, "Median time to take action (seconds)", MINORS, TO_DECISION, f"{f}/time_to_action/median_seconds")
    yield row(
        OWN,
        "Restrictions of the provision of the service",
        GROOMING,
        "contact with minors restricted",
        f"{f}/grooming_interventions/contact_restrictions",
    )
    yield row(OWN, "Other measures", GROOMING, "safety message shown", f"{f}/grooming_interventions/safety_messages")
    yield row(OWN, REMOVED, CSAM, "live stream terminated", f"{f}/live_streams/terminated")
    yield row(NOTICES, RECEIVED, MINORS, "all reasons", f"{f}/user_reports/received")
    yield from each(NOTICES, RECEIVED, MINORS, "reason", f"{f}/user_reports/by_reason")
    yield row(NOTICES, "Number of notices acted upon", MINORS, "case confirmed", f"{f}/user_reports/actioned")
    yield row(
        NOTICES,
        "Median time to take action on notices (seconds)",
        MINORS,
        f"{TO_DECISION}, queue user_reports",
        f"{f}/time_to_action_by_queue/user_reports/median_seconds",
    )
    yield row(EXTRA, "Reports to law enforcement drafted", CSAM, "", f"{f}/law_enforcement_reports/drafted")
    yield row(EXTRA, SUBMITTED, CSAM, "", f"{f}/law_enforcement_reports/submitted")
    yield from each(EXTRA, SUBMITTED, CSAM, "via", f"{f}/law_enforcement_reports/submitted_by_transport")
    yield from quantiles("Detection to report submission", f"{f}/law_enforcement_reports/detection_to_submission")
    nca = f"{f}/law_enforcement_reports/nca_referrals"
    if "nca_referrals" in v.raw(f"{f}/law_enforcement_reports"):
        yield row(EXTRA, "Referrals to the UK NCA: packages made", CSAM, "", f"{nca}/packages_made")
        yield row(EXTRA, "Referrals to the UK NCA: reports referred", CSAM, "", f"{nca}/referred")
        yield from quantiles("Detection to NCA referral", f"{nca}/detection_to_referral")
    yield row(EXTRA, "90th percentile time to take action (seconds)", MINORS, "", f"{f}/time_to_action/p90_seconds")
    yield row(EXTRA, "Live streams watched", CSAM, "", f"{f}/live_streams/watched")
    yield from quantiles("Live stream registration to termination", f"{f}/live_streams/time_to_terminate")
    yield row(EXTRA, "Cases opened", MINORS, "", f"{f}/cases/opened_total")
    yield row(EXTRA, "Grooming cases opened", GROOMING, "", f"{f}/grooming_interventions/cases_opened")


def to_csv(report: dict[str, Any]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    w.writerows(csv_rows(report))
    return buf.getvalue()
