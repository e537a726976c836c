"""The update file's format (claircore libvuln/jsonblob): lines written, groups read back."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

import orjson

from clair_common.models import Vulnerability
from clair_matcher.airgap._errors import AirgapError
from clair_matcher.airgap._progress import Progress
from clair_matcher.store import KIND_VULNERABILITY


def _header(updater: str, fingerprint: str, date: datetime, ref: str, field_name: str) -> bytes:
    stamp = date.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return b"".join(
        (
            b'{"Updater":',
            orjson.dumps(updater),
            b',"Fingerprint":',
            orjson.dumps(fingerprint),
            b',"Date":',
            orjson.dumps(stamp),
            b',"Ref":',
            orjson.dumps(ref),
            b',"',
            field_name.encode(),
            b'":',
        )
    )


def vulnerability_lines(
    updater: str, fingerprint: str, vulns: Iterator[Vulnerability], date: datetime | None = None
) -> Iterator[bytes]:
    """One run's lines, in Go's field order (CommonEntry, Ref, Vuln, Kind)."""
    prefix = _header(updater, fingerprint, date or datetime.now(UTC), str(uuid.uuid4()), "Vuln")
    suffix = b',"Kind":"vulnerability"}\n'
    for v in vulns:
        if not v.updater:
            v.updater = updater
        yield prefix + orjson.dumps(v.to_json()) + suffix


def enrichment_lines(
    updater: str,
    fingerprint: str,
    records: Iterator[tuple[Sequence[str], Any]],
    date: datetime | None = None,
) -> Iterator[bytes]:
    """(tags, enrichment JSON) records as enrichment lines."""
    prefix = _header(
        updater, fingerprint, date or datetime.now(UTC), str(uuid.uuid4()), "Enrichment"
    )
    suffix = b',"Kind":"enrichment"}\n'
    for tags, data in records:
        body = orjson.dumps({"Tags": list(tags), "Enrichment": data})
        yield prefix + body + suffix


@dataclass(frozen=True, slots=True)
class GroupHead:
    updater: str
    fingerprint: str
    ref: str
    kind: str


class UpdateFileReader:
    """The groups of an update file, one line at a time (runs in worker threads)."""

    def __init__(self, stream: IO[bytes], where: str, progress: Progress) -> None:
        self.stream = stream
        self.where = where
        self.progress = progress
        self.line_no = 0
        self._pending: dict[str, Any] | None = None
        self.current: GroupHead | None = None

    def _read(self) -> dict[str, Any] | None:
        if self._pending is not None:
            doc, self._pending = self._pending, None
            return doc
        while True:
            line = self.stream.readline()
            if not line:
                return None
            self.line_no += 1
            if line.strip():
                break
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise AirgapError(f"{self.where}: line {self.line_no}: invalid JSON: {exc}") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("Updater"), str):
            raise AirgapError(f"{self.where}: line {self.line_no}: not an update record")
        return doc

    def _head(self, doc: dict[str, Any]) -> GroupHead:
        return GroupHead(
            updater=doc["Updater"],
            fingerprint=str(doc.get("Fingerprint") or ""),
            ref=str(doc.get("Ref") or ""),
            kind=str(doc.get("Kind") or KIND_VULNERABILITY),
        )

    def next_group(self) -> GroupHead | None:
        """Skips what is left of the current group; the head of the next one, if any."""
        for _ in self._rest():
            pass
        doc = self._read()
        if doc is None:
            self.current = None
            return None
        self._pending = doc
        self.current = self._head(doc)
        return self.current

    def _rest(self) -> Iterator[dict[str, Any]]:
        """The remaining lines of the current group."""
        head = self.current
        if head is None:
            return
        while (doc := self._read()) is not None:
            if str(doc.get("Ref") or "") != head.ref or str(doc.get("Kind") or "") != head.kind:
                self._pending = doc
                break
            yield doc
        self.current = None

    def vulnerabilities(self) -> Iterator[Vulnerability]:
        count = 0
        for doc in self._rest():
            vuln = doc.get("Vuln")
            if not isinstance(vuln, dict):
                raise AirgapError(f"{self.where}: line {self.line_no}: Vuln: expected an object")
            count += 1
            if count == 1000:
                self.progress.add(count)
                count = 0
            yield Vulnerability.from_json(vuln)
        self.progress.add(count)

    def enrichments(self) -> Iterator[tuple[list[str], Any]]:
        for doc in self._rest():
            record = doc.get("Enrichment")
            tags = record.get("Tags") if isinstance(record, dict) else None
            if not isinstance(record, dict) or not isinstance(tags, list):
                raise AirgapError(f"{self.where}: line {self.line_no}: Enrichment: bad record")
            self.progress.add(1)
            yield [str(t) for t in tags], record.get("Enrichment")
