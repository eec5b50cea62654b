"""Other exchanges through python-threatexchange's ``SignalExchangeAPI`` implementations.

Why not our own clients: python-threatexchange (pytx, the ``threatexchange`` package) already speaks
the field's exchanges (StopNCII, NCMEC hash sharing, Meta's ThreatExchange, plain files) and models
them exactly the way Safeguard's sources are modelled: a checkpointed stream of upserts and deletes
(``fetch_iter``; a ``None`` value means delete). :class:`PytxSource` adapts any of them to
:class:`~safeguard.banks.sources.base.HashListSource`, so a fetched batch goes into a bank like any
other rows (``BankService.import_rows``) and each process's index follows the change log.

What is covered here (each tested against a local server implementing the documented shapes):

- ``file``: a local list, one ``<signal type> <hash>`` per line (or one hash per line with a given
  type): pytx's ``LocalFileSignalExchangeAPI``.
- ``url``: the same list format fetched over HTTP(S) through Safeguard's egress policy (a pinned,
  checked connection, a size bound), then read by the same pytx API.
- ``stopncii``: StopNCII.org's ``FetchHashes`` API through pytx's ``StopNCIISignalExchangeAPI`` and
  its ``StopNCIIAPI`` client, resumable from pytx's checkpoint (the ``nextSetTimestamp``).
- ``threatexchange``: a ThreatExchange privacy group's ``/threat_updates``.
- ``ncmec``: NCMEC's hash sharing API (``/v2/entries``, XML) through pytx's ``NCMECSignalExchangeAPI``.

pytx's clients connect with ``requests``: each is subclassed (``pytx_clients.py``) so that its session
checks every connection against the egress policy at connect time (``safeguard.egress_requests``).
A moderator's opinion on an entry fetched from StopNCII, ThreatExchange or NCMEC goes back through
:meth:`PytxSource.send_opinion` (queued by ``safeguard.exchange.outbox``, sent by
``safeguard.exchange.pytx_opinions`` when the bank is next pulled).

pytx is an optional dependency (the ``exchanges`` extra: it pulls in faiss and requests); without it
these sources raise ``exchange_unavailable`` and nothing else changes. Signal types map to Safeguard's
(``pdq``; ``video_md5`` and ``md5`` → ``md5``; ``sha256``); other types (``url``, ``raw_text``,
``tmk``) are rejected row by row and listed in :attr:`PytxSource.rejected`.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import httpx

from safeguard import strictjson
from safeguard.banks.sources.base import Checkpoint, HashListSource, Row, RowError, make_row
from safeguard.egress import EgressPolicy, checked_client, parse_url, require_https
from safeguard.errors import ConfigError, InvalidInput, PayloadTooLarge, SafeguardError

if TYPE_CHECKING:
    from safeguard.banks.service import BankService

__all__ = [
    "NCMEC_FINGERPRINTS",
    "SIGNAL_TYPES",
    "FileListSource",
    "NCMECSource",
    "OpinionNotSendable",
    "PullResult",
    "PytxSource",
    "StopNCIISource",
    "ThreatExchangeSource",
    "URLListSource",
    "available",
    "ncmec_lookup",
    "pull",
]

#: pytx signal type names (and ThreatExchange's indicator types) → Safeguard's
SIGNAL_TYPES = {
    "pdq": "pdq",
    "video_md5": "md5",
    "md5": "md5",
    "sha256": "sha256",
    "HASH_PDQ": "pdq",
    "HASH_MD5": "md5",
    "HASH_SHA256": "sha256",
}
#: ThreatExchange's Graph API base (pytx 1.2's default)
THREATEXCHANGE_URL = "https://graph.facebook.com/v26.0"
#: the largest list a ``url`` source downloads
MAX_LIST_BYTES = 512 * 1024 * 1024


def available() -> bool:
    """Whether python-threatexchange is installed (``pip install 'safeguard[exchanges]'``)."""
    try:
        import threatexchange.exchanges.signal_exchange_api  # noqa: F401
    except ImportError:
        return False
    return True


def _require() -> None:
    if not available():
        raise ConfigError(
            "this exchange needs python-threatexchange: pip install 'safeguard[exchanges]'",
            code="exchange_unavailable",
        )


class OpinionNotSendable(InvalidInput):
    """An opinion that can never be sent to the exchange its entry came from (it is dropped, with this)."""

    code = "opinion_not_sendable"


def _sent(what: str, call: Callable[[], Any]) -> Any:
    """``call()``, with a failed request (or pytx's own exception for one) as ``source_failed``."""
    import requests

    try:
        return call()
    except SafeguardError:
        raise
    except requests.RequestException as exc:
        raise SafeguardError(f"{what} failed: {exc}", code="source_failed", status=502) from exc
    except Exception as exc:  # pytx raises bare Exceptions (NCMEC: no feedback reason to pick)
        raise SafeguardError(f"{what} failed: {exc}", code="source_failed", status=502) from exc


class PytxSource(HashListSource):
    """A pytx ``SignalExchangeAPI`` as a :class:`HashListSource`.

    Checkpoints are pytx's checkpoint dataclasses as JSON (``Checkpoint.value``), so a sync resumes
    where pytx would. Rows whose signal type Safeguard does not know, or whose value is malformed, are
    left out of the batch and kept in :attr:`rejected` with their running row number."""

    name: ClassVar[str] = "pytx"

    def __init__(self, api: Any, checkpoint_cls: type[Any], *, exchange: str) -> None:
        self.api = api
        self.checkpoint_cls = checkpoint_cls
        self.exchange = exchange
        self.rejected: list[RowError] = []
        self._line = 0

    def _load(self, checkpoint: Checkpoint | None) -> Any:
        if checkpoint is None:
            return None
        try:
            fields = strictjson.loads(checkpoint.value, what="the exchange checkpoint")
            if not isinstance(fields, dict):
                raise TypeError("not an object")
            return self.checkpoint_cls(**fields)
        except (SafeguardError, TypeError) as exc:
            raise InvalidInput(f"not a {self.exchange} checkpoint: {exc}", code="invalid_checkpoint") from exc

    def _row(self, stype: str, value: str, meta: Any) -> Row | RowError:
        self._line += 1
        ours = SIGNAL_TYPES.get(stype)
        if ours is None:
            return RowError(self._line, f"signal type {stype!r} is not one Safeguard matches", "unsupported_signal")
        if meta is None:
            return make_row(self._line, ours, value, delete=True, source=self.exchange)
        got = list(meta.get_as_opinions()) if hasattr(meta, "get_as_opinions") else []
        opinions = [o.category.name.lower() for o in got]
        provenance: dict[str, Any] = {"exchange": self.exchange}
        if opinions:
            provenance["opinions"] = sorted(set(opinions))
        # ThreatExchange: the descriptors (others' submissions) an opinion sent back reacts to
        descriptors = {getattr(o, "descriptor_id", None) for o in got if not o.is_mine} - {None, -1}
        if descriptors:
            provenance["descriptors"] = sorted(descriptors)
        return make_row(self._line, ours, value, source=self.exchange, provenance=provenance)

    def send_opinion(self, signal_type: str, value: str, opinion: str, provenance: dict[str, Any]) -> None:
        """Send a moderator's ``confirmed`` or ``disputed`` on an entry this exchange gave back to it.

        Raises :class:`OpinionNotSendable` when it can never be sent (the exchange takes no opinions, the
        entry lacks what the exchange needs to name it), and ``source_failed`` when the exchange failed
        (tried again later). pytx 1.2's ``SignalExchangeAPI.report_opinion`` is implemented only by its
        local file exchange, so each exchange here calls its client's own feedback request."""
        raise OpinionNotSendable(f"{self.exchange} takes no opinions back")

    def fetch_iter(self, checkpoint: Checkpoint | None) -> Iterator[tuple[list[Row], Checkpoint]]:
        from threatexchange.signal_type.md5 import VideoMD5Signal
        from threatexchange.signal_type.pdq.signal import PdqSignal

        for delta in self.api.fetch_iter([PdqSignal, VideoMD5Signal], self._load(checkpoint)):
            rows: list[Row] = []
            for (stype, value), meta in delta.updates.items():
                got = self._row(stype, value, meta)
                if isinstance(got, RowError):
                    self.rejected.append(got)
                else:
                    rows.append(got)
            cp = Checkpoint(json.dumps(dataclasses.asdict(delta.checkpoint), sort_keys=True))
            yield rows, cp


class FileListSource(PytxSource):
    """A local hash list: pytx's ``LocalFileSignalExchangeAPI`` (a full snapshot on every fetch: a hash
    that leaves the file is not deleted from the bank)."""

    name = "file"

    def __init__(self, path: str | Path, *, signal_type: str | None = None, exchange: str = "file") -> None:
        _require()
        from threatexchange.exchanges import fetch_state
        from threatexchange.exchanges.impl.file_api import FileCollaborationConfig, LocalFileSignalExchangeAPI

        p = Path(path)
        if not p.is_file():
            raise InvalidInput(f"{p} is not a file", code="invalid_source")
        collab = FileCollaborationConfig(name=exchange, filename=str(p.resolve()), signal_type=signal_type)
        super().__init__(
            LocalFileSignalExchangeAPI.for_collab(collab), fetch_state.FetchCheckpointBase, exchange=exchange
        )


class URLListSource(HashListSource):
    """A hash list at an HTTP(S) URL, fetched through the egress policy, read as a :class:`FileListSource`."""

    name = "url"

    def __init__(
        self, url: str, settings: Any, *, signal_type: str | None = None, max_bytes: int = MAX_LIST_BYTES
    ) -> None:
        _require()
        self.target = parse_url(url, ("http", "https"), code="invalid_source")
        self.policy = EgressPolicy.from_settings(settings)
        self.policy.check_target(self.target)
        self.url, self.signal_type, self.max_bytes = url, signal_type, max_bytes
        self.rejected: list[RowError] = []

    def fetch_iter(self, checkpoint: Checkpoint | None) -> Iterator[tuple[list[Row], Checkpoint]]:
        with tempfile.TemporaryDirectory(prefix="safeguard-list-") as tmp:
            path = Path(tmp) / "list.txt"
            size = 0
            try:
                with checked_client(self.policy, 60.0) as client, client.stream("GET", self.url) as r:
                    if r.status_code != 200:
                        raise SafeguardError(f"{self.url} answered {r.status_code}", code="source_failed", status=502)
                    with path.open("wb") as out:
                        for chunk in r.iter_bytes():
                            size += len(chunk)
                            if size > self.max_bytes:
                                raise PayloadTooLarge(
                                    f"{self.url} is over {self.max_bytes} bytes", code="payload_too_large"
                                )
                            out.write(chunk)
            except httpx.HTTPError as exc:
                raise SafeguardError(f"fetching {self.url} failed: {exc}", code="source_failed", status=502) from exc
            inner = FileListSource(path, signal_type=self.signal_type, exchange=self.url[:200])
            try:
                yield from inner.fetch_iter(None)
            finally:
                self.rejected.extend(inner.rejected)


class StopNCIISource(PytxSource):
    """StopNCII.org's hash feed through pytx (``FetchHashes``, paged, resumable by timestamp).

    pytx 1.2's ``_get_delta_mapping`` compares the *hash value* with the Withdrawn/Deleted statuses,
    so it never yields a delete; this source maps each record itself (with pytx's own record and
    metadata types) and turns a withdrawn or deleted record into a delete."""

    name = "stopncii"

    def __init__(
        self, base_url: str, settings: Any, *, fetch_key: str, subscription_key: str, feedback_key: str = ""
    ) -> None:
        _require()
        from threatexchange.exchanges.clients.stopncii.api import StopNCIIEndpoint
        from threatexchange.exchanges.collab_config import CollaborationConfigBase
        from threatexchange.exchanges.impl.stop_ncii_api import StopNCIICheckpoint, StopNCIISignalExchangeAPI

        from safeguard.banks.sources.pytx_clients import CheckedStopNCIIAPI

        target = parse_url(base_url, ("http", "https"), code="invalid_source")
        # checked now for a clear error at once; every connection is checked again when it is made
        self.policy = EgressPolicy.from_settings(settings)
        self.target = target
        self.policy.check_target(target)
        self.feedback_key = feedback_key
        extra = {StopNCIIEndpoint.SubmitFeedback: feedback_key} if feedback_key else None
        client = CheckedStopNCIIAPI(
            self.policy, subscription_key, fetch_key, extra, base_url_override=base_url.rstrip("/")
        )
        api = StopNCIISignalExchangeAPI(CollaborationConfigBase("stopncii", "stopncii", True), client)
        super().__init__(api, StopNCIICheckpoint, exchange="stopncii")

    def send_opinion(self, signal_type: str, value: str, opinion: str, provenance: dict[str, Any]) -> None:
        """``SubmitFeedback``: confirmed is ``Blocked``, disputed ``NotBlocked`` (needs the feedback key)."""
        from threatexchange.exchanges.clients.stopncii import api as ncii

        types = {"pdq": ncii.StopNCIISignalType.ImagePDQ, "md5": ncii.StopNCIISignalType.VideoMD5}
        if signal_type not in types:
            raise OpinionNotSendable(f"StopNCII takes no feedback on {signal_type} hashes")
        if not self.feedback_key:
            raise SafeguardError(
                "sending opinions to StopNCII needs its SubmitFeedback key: FETCH_KEY,SUBSCRIPTION_KEY,FEEDBACK_KEY",
                code="source_failed",
                status=502,
            )
        value_ = (
            ncii.StopNCIICSPFeedbackValue.Blocked
            if opinion == "confirmed"
            else ncii.StopNCIICSPFeedbackValue.NotBlocked
        )
        _sent("StopNCII SubmitFeedback", lambda: self.api.api.submit_feedback(types[signal_type], value, value_))

    def fetch_iter(self, checkpoint: Checkpoint | None) -> Iterator[tuple[list[Row], Checkpoint]]:
        from threatexchange.exchanges.clients.stopncii import api as ncii
        from threatexchange.exchanges.impl.stop_ncii_api import (
            StopNCIICheckpoint,
            StopNCIISignalMetadata,
            _type_mapping,
        )

        start = ncii.StopNCIIAPI.DEFAULT_START_TIME
        loaded = self._load(checkpoint)
        if loaded is not None:
            start = loaded.update_time
        gone = (ncii.StopNCIICaseStatus.Withdrawn, ncii.StopNCIICaseStatus.Deleted)
        for page in _guarded(self.api.api.fetch_hashes_iter(start_timestamp=start), "StopNCII"):
            rows: list[Row] = []
            for rec in page.hashRecords:
                stype = _type_mapping().get(rec.signalType, str(rec.signalType.value))
                meta = None if rec.hashStatus in gone else StopNCIISignalMetadata(rec.CSPFeedbacks)
                got = self._row(stype, rec.hashValue, meta)
                if isinstance(got, RowError):
                    self.rejected.append(got)
                else:
                    rows.append(got)
            cp = StopNCIICheckpoint(page.nextSetTimestamp, int(time.time()))
            yield rows, Checkpoint(json.dumps(dataclasses.asdict(cp), sort_keys=True))


class ThreatExchangeSource(PytxSource):
    """A ThreatExchange privacy group's ``/threat_updates`` through pytx's
    ``FBThreatExchangeSignalExchangeAPI`` and ``ThreatExchangeAPI`` (cursored pages, resumed from
    pytx's checkpoint: the highest ``last_updated`` seen). A tombstone (``should_delete``) is a delete;
    descriptors' statuses and reactions become the entry's provenance opinions. ``api_token`` is the
    app's ``APP_ID|SECRET`` access token."""

    name = "threatexchange"

    def __init__(
        self, privacy_group: int, settings: Any, *, api_token: str, base_url: str = THREATEXCHANGE_URL
    ) -> None:
        _require()
        from threatexchange.exchanges.impl.fb_threatexchange_api import (
            FBThreatExchangeCheckpoint,
            FBThreatExchangeCollabConfig,
            FBThreatExchangeSignalExchangeAPI,
        )

        from safeguard.banks.sources.pytx_clients import CheckedThreatExchangeAPI

        app_id = api_token.partition("|")[0]
        if not app_id.isdigit():
            raise InvalidInput("a ThreatExchange token is APP_ID|SECRET", code="invalid_source")
        self.target = parse_url(base_url, ("http", "https"), code="invalid_source")
        self.policy = EgressPolicy.from_settings(settings)
        self.policy.check_target(self.target)
        client = CheckedThreatExchangeAPI(self.policy, api_token, endpoint_override=base_url.rstrip("/"))
        collab = FBThreatExchangeCollabConfig(name=f"threatexchange-{privacy_group}", privacy_group=privacy_group)
        api = FBThreatExchangeSignalExchangeAPI(client, collab)
        super().__init__(api, FBThreatExchangeCheckpoint, exchange="threatexchange")

    def send_opinion(self, signal_type: str, value: str, opinion: str, provenance: dict[str, Any]) -> None:
        """A reaction on each descriptor the entry came from: confirmed is ``HELPFUL``, disputed
        ``NOT_HELPFUL`` (pytx's ``react_upvote``/``react_downvote_threat_descriptor``)."""
        descriptors = provenance.get("descriptors") or []
        if not descriptors:
            raise OpinionNotSendable("the entry names no ThreatExchange descriptor to react to")
        client = self.api.client
        react = (
            client.react_upvote_threat_descriptor if opinion == "confirmed" else client.react_downvote_threat_descriptor
        )
        for d in descriptors:
            _, _, answer = _sent("ThreatExchange reaction", functools.partial(react, int(d)))
            if not (isinstance(answer, dict) and answer.get("success") is True):
                raise SafeguardError(
                    f"ThreatExchange refused the reaction on descriptor {d}: {str(answer)[:200]}",
                    code="source_failed",
                    status=502,
                )

    def fetch_iter(self, checkpoint: Checkpoint | None) -> Iterator[tuple[list[Row], Checkpoint]]:
        # pytx asserts on an empty page ("empty update?"), which is how the API answers when nothing is
        # new: that ends the fetch
        yield from _guarded(super().fetch_iter(checkpoint), "ThreatExchange", empty_ok=True)


#: NCMEC fingerprints Safeguard matches, by (entry type, fingerprint tag); the others (sha1, pdna,
#: netclean, videntifier, tmk_pdqf, ...) are not Safeguard signals and are left out without a row error
NCMEC_FINGERPRINTS = {("image", "pdq"): "pdq", ("image", "md5"): "md5", ("video", "md5"): "md5"}

#: finds the (signal type, value) of the bank entries an NCMEC entry ("MEMBER-ID") wrote: a deletion
#: names only the entry
EntryLookup = Callable[[list[str]], list[tuple[str, str]]]


class NCMECSource(PytxSource):
    """NCMEC's hash sharing API (``/v2/entries``, XML) through pytx's ``NCMECSignalExchangeAPI``.

    pytx fetches in time windows it sizes itself and pages through each with ``paging/next``; its
    checkpoint (the end of the last finished window, or a window and the paging URL to resume mid-way)
    is stored as JSON. pytx's client accepts only NCMEC's fixed environment URLs: a subclass points it
    at ``base_url`` (``pytx_clients.CheckedNCMECHashAPI``) and checks every connection against the
    egress policy. Each NCMEC entry (an image or a video, by member) becomes one bank entry per
    fingerprint Safeguard matches (:data:`NCMEC_FINGERPRINTS`), with NCMEC's classification as its
    category and the entry, member and fingerprint type in ``provenance.ncmec`` (what an opinion sent
    back names). A deleted entry names only its id, so its bank entries are found by that provenance
    (``lookup``, which :func:`pull` provides) and deleted."""

    name = "ncmec"

    def __init__(
        self,
        base_url: str,
        settings: Any,
        *,
        username: str,
        password: str,
        only_esp_ids: tuple[int, ...] = (),
        lookup: EntryLookup | None = None,
        dispute_reason: str | None = None,
    ) -> None:
        _require()
        from threatexchange.exchanges.clients.ncmec.hash_api import NCMECEnvironment
        from threatexchange.exchanges.impl.ncmec_api import NCMECCheckpoint, NCMECCollabConfig

        from safeguard.banks.sources.pytx_clients import CheckedNCMECHashAPI, CheckedNCMECSignalExchangeAPI

        if not (username and password):
            raise InvalidInput("NCMEC credentials are USER:PASSWORD", code="invalid_source")
        try:
            base = require_https(base_url, "the NCMEC base URL")
        except ConfigError as exc:
            raise InvalidInput(exc.message, code="invalid_source") from None
        self.target = parse_url(base, ("http", "https"), code="invalid_source")
        self.policy = EgressPolicy.from_settings(settings)
        self.policy.check_target(self.target)
        self.client = CheckedNCMECHashAPI(self.policy, username, password, base_url=base)
        collab = NCMECCollabConfig(name="ncmec", environment=NCMECEnvironment.Industry, only_esp_ids=set(only_esp_ids))
        super().__init__(CheckedNCMECSignalExchangeAPI(collab, self.client), NCMECCheckpoint, exchange="ncmec")
        self.only_esp_ids = set(only_esp_ids)
        self.lookup = lookup
        self.dispute_reason = dispute_reason

    def _load(self, checkpoint: Checkpoint | None) -> Any:
        from threatexchange.exchanges.impl.ncmec_api import _NCMECPagingInfo

        loaded = super()._load(checkpoint)
        if loaded is not None and isinstance(loaded.paging_info, dict):
            try:
                loaded.paging_info = _NCMECPagingInfo(**loaded.paging_info)
            except TypeError as exc:
                raise InvalidInput(f"not an ncmec checkpoint: {exc}", code="invalid_checkpoint") from exc
        return loaded

    def send_opinion(self, signal_type: str, value: str, opinion: str, provenance: dict[str, Any]) -> None:
        """Feedback on the entry's fingerprint (``PUT /v2/entries/{member}/{id}/{type}/feedback``): confirmed
        is an upvote, disputed a downvote with ``dispute_reason`` (NCMEC's reason GUID; without it, the
        one reason NCMEC lists for the type, as pytx picks it, or an error naming the choices)."""
        from threatexchange.exchanges.clients.ncmec.hash_api import FeedbackType, FingerprintType

        ref = provenance.get("ncmec") or {}
        try:
            fp = FingerprintType(str(ref.get("fingerprint")))
            member, entry_id = int(ref["member"]), str(ref["id"])
        except (KeyError, TypeError, ValueError):
            raise OpinionNotSendable("the entry names no NCMEC entry and fingerprint") from None
        vote = FeedbackType.upvote if opinion == "confirmed" else FeedbackType.downvote
        reason = self.dispute_reason if vote is FeedbackType.downvote else None
        _sent("NCMEC feedback", lambda: self.client.submit_feedback(member, entry_id, fp, vote, reason))

    def _entry_rows(self, key: str, e: Any) -> list[Row]:
        rows: list[Row] = []
        kind = e.entry_type.value
        for tag, value in sorted(e.fingerprints.items()):
            ours = NCMEC_FINGERPRINTS.get((kind, tag.lower()))
            if ours is None:
                continue
            self._line += 1
            prov = {
                "exchange": "ncmec",
                "opinions": ["positive_class"],
                "ncmec": {"entry": key, "id": e.id, "member": e.member_id, "type": kind, "fingerprint": tag.upper()},
            }
            category = (e.classification or None) and str(e.classification)[:64]
            got = make_row(self._line, ours, value, category=category, source="ncmec", provenance=prov)
            if isinstance(got, RowError):
                self.rejected.append(got)
            else:
                rows.append(got)
        return rows

    def fetch_iter(self, checkpoint: Checkpoint | None) -> Iterator[tuple[list[Row], Checkpoint]]:
        from threatexchange.signal_type.md5 import VideoMD5Signal
        from threatexchange.signal_type.pdq.signal import PdqSignal

        deltas = self.api.fetch_iter([PdqSignal, VideoMD5Signal], self._load(checkpoint))
        for delta in _guarded(deltas, "NCMEC", broad=True):
            rows: list[Row] = []
            gone: list[str] = []
            for key, e in delta.updates.items():
                if self.only_esp_ids and e.member_id not in self.only_esp_ids:
                    continue
                if e.deleted:
                    gone.append(key)
                else:
                    rows.extend(self._entry_rows(key, e))
            if gone and self.lookup is not None:
                for stype, value in self.lookup(gone):
                    self._line += 1
                    rows.append(Row(self._line, stype, value, source="ncmec", delete=True))
            cp = Checkpoint(json.dumps(dataclasses.asdict(delta.checkpoint), sort_keys=True))
            yield rows, cp


def ncmec_lookup(banks: BankService, bank: str) -> EntryLookup:
    """The bank entries of NCMEC entries, by their ``provenance.ncmec.entry`` (for deletions)."""
    from sqlalchemy import select

    from safeguard.store.models import BankEntry

    def find(keys: list[str]) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        with banks.db.read() as s:
            bank_id = banks.get(s, bank).id
            key_col = BankEntry.provenance["ncmec"]["entry"].as_string()
            for a in range(0, len(keys), 500):
                q = select(BankEntry.signal_type, BankEntry.value).where(
                    BankEntry.bank_id == bank_id,
                    BankEntry.source == "ncmec",
                    BankEntry.enabled.is_(True),
                    key_col.in_(keys[a : a + 500]),
                )
                out.extend((st, v) for st, v in s.execute(q).all())
        return out

    return find


@dataclass
class PullResult:
    batches: int = 0
    added_or_updated: int = 0
    deleted: int = 0
    rejected: list[RowError] = field(default_factory=list)
    checkpoint: Checkpoint | None = None


def pull(
    banks: BankService, bank: str, source: HashListSource, checkpoint_file: Path | None, *, actor: str
) -> PullResult:
    """Fetch ``source`` into ``bank`` from the checkpoint in ``checkpoint_file`` (none: from the start),
    writing the file (atomically) after each applied batch: a crash resumes after the last one."""
    result = PullResult()
    checkpoint = None
    if checkpoint_file is not None and checkpoint_file.exists():
        checkpoint = Checkpoint(checkpoint_file.read_text(encoding="utf-8").strip())
    if isinstance(source, NCMECSource) and source.lookup is None:
        source.lookup = ncmec_lookup(banks, bank)
    for rows, cp in source.fetch_iter(checkpoint):
        got = banks.import_rows(bank, rows, actor=actor, source=source.name)
        result.batches += 1
        result.added_or_updated += got.added_or_updated
        result.deleted += got.deleted
        result.rejected.extend(got.errors)
        if checkpoint_file is not None:
            tmp = checkpoint_file.with_name(checkpoint_file.name + ".tmp")
            tmp.write_text(cp.value + "\n", encoding="utf-8")
            os.replace(tmp, checkpoint_file)
        result.checkpoint = cp
    result.rejected.extend(getattr(source, "rejected", []))
    return result


def _guarded(pages: Iterator[Any], what: str, *, empty_ok: bool = False, broad: bool = False) -> Iterator[Any]:
    """``pages``, with a failed request or a page pytx cannot read as ``source_failed`` (502): the
    batch is not yielded, so its checkpoint is never handed out."""
    import dacite
    import requests

    while True:
        try:
            page = next(pages)
        except StopIteration:
            return
        except AssertionError as exc:
            if empty_ok and "empty update" in str(exc):
                return
            raise SafeguardError(f"{what} fetch failed: {exc}", code="source_failed", status=502) from exc
        except (requests.RequestException, ValueError, dacite.DaciteError) as exc:
            raise SafeguardError(f"{what} fetch failed: {exc}", code="source_failed", status=502) from exc
        except SafeguardError:
            raise
        except Exception as exc:
            # pytx's NCMEC client raises a bare Exception for a page it cannot parse (and XML's
            # ParseError for one that is not XML)
            if not broad:
                raise
            raise SafeguardError(f"{what} fetch failed: {exc}", code="source_failed", status=502) from exc
        yield page
