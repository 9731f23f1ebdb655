"""The offline proof: an export of the audit chain and its verification (issue 14 item 3).

An export is a directory anyone can check without dairi's database or service::

    manifest.json            what is here, the range, its anchor and head, the
                             SHA-256 of every other file, the retention label
    events.jsonl             one event a line: exactly the RFC 8785 canonical JSON
                             the chain hashes (SHA-256 of the line is the event's hash)
    checkpoints/<seq>.json   a checkpoint statement (canonical JSON)
    checkpoints/<seq>.p7s    its detached CMS signature by the audit key (DER)
    checkpoints/<seq>.tst    the RFC 3161 time-stamp token over that signature (DER)
    certs/audit.pem          the audit certificate(s); certs/chain.pem its issuers
    trust/roots.pem          the roots the exporter trusted (a verifier should bring
                             its own: ``--trust DIR``)

:func:`verify_export` reads it back; ``python -m audit verify DIR`` runs it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from asn1crypto import pem

from audit.chain import GENESIS_HASH, AuditEvent
from audit.checkpoint import Checkpoint, Trust
from audit.verify import Break, Link, StoredCheckpoint, VerificationReport, verify_log
from dairi import DairiError

FORMAT = "dairi-audit-export"
VERSION = 1
MANIFEST = "manifest.json"
EVENTS = "events.jsonl"


class ExportError(DairiError):
    code = "AUDIT_EXPORT_FAILED"


def _pem(ders: Iterable[bytes]) -> bytes:
    return b"".join(pem.armor("CERTIFICATE", der) for der in ders)


def read_pem_certificates(path: Path) -> list[bytes]:
    """DER of every certificate in a PEM file (none if it does not exist)."""
    data = path.read_bytes() if path.is_file() else b""
    if not pem.detect(data):
        return []
    try:
        return [der for kind, _, der in pem.unarmor(data, multiple=True) if kind == "CERTIFICATE"]
    except ValueError:
        return []


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class ExportSummary:
    directory: Path
    events: int
    first_sequence: int | None
    last_sequence: int | None
    head_hash: str
    checkpoints: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "directory": str(self.directory),
            "events": self.events,
            "from": self.first_sequence,
            "to": self.last_sequence,
            "head_hash": self.head_hash,
            "checkpoints": self.checkpoints,
        }


def write_export(
    directory: Path,
    events: Iterable[AuditEvent],
    checkpoints: Sequence[Checkpoint],
    *,
    audit_certificates_der: Sequence[bytes],
    chain_der: Sequence[bytes],
    roots_der: Sequence[bytes],
    start_sequence: int = 1,
    anchor_hash: str = GENESIS_HASH,
    exported_at: datetime | None = None,
    retention_years: int | None = None,
    source: str = "dairi",
) -> ExportSummary:
    """Write an export of ``events`` (in sequence order, from ``start_sequence``,
    whose predecessor hashed to ``anchor_hash``) and ``checkpoints`` into
    ``directory``, which must be new or empty. The events are written as they
    are: a broken chain is exported broken (the verifier says where)."""
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise ExportError(f"{directory} exists and is not an empty directory")
    exported_at = exported_at or datetime.now(UTC)
    (directory / "checkpoints").mkdir(parents=True, exist_ok=True)
    (directory / "certs").mkdir(exist_ok=True)
    (directory / "trust").mkdir(exist_ok=True)
    count, first, last, head = 0, None, None, anchor_hash
    with (directory / EVENTS).open("wb") as f:
        for event in events:
            line = event.canonical()
            f.write(line + b"\n")
            if first is None:
                first = event.sequence
            last, count = event.sequence, count + 1
            head = hashlib.sha256(line).hexdigest()
    files = [EVENTS]
    listed = []
    for checkpoint in checkpoints:
        seq = checkpoint.statement.sequence
        stem = f"checkpoints/{seq:012d}"
        entry: dict[str, Any] = {
            "sequence": seq,
            "statement": f"{stem}.json",
            "signature": f"{stem}.p7s",
            "timestamp": f"{stem}.tst" if checkpoint.timestamp_der else None,
        }
        (directory / entry["statement"]).write_bytes(checkpoint.statement_bytes)
        (directory / entry["signature"]).write_bytes(checkpoint.signature_der)
        if checkpoint.timestamp_der:
            (directory / entry["timestamp"]).write_bytes(checkpoint.timestamp_der)
        files += [v for k, v in entry.items() if k != "sequence" and v]
        listed.append(entry)
    (directory / "certs" / "audit.pem").write_bytes(_pem(audit_certificates_der))
    (directory / "certs" / "chain.pem").write_bytes(_pem(chain_der))
    (directory / "trust" / "roots.pem").write_bytes(_pem(roots_der))
    files += ["certs/audit.pem", "certs/chain.pem", "trust/roots.pem"]
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "source": source,
        "exported_at": exported_at.astimezone(UTC).isoformat(),
        "hash": "sha256 of each events.jsonl line (RFC 8785 canonical JSON)",
        "range": {"from": first if first is not None else start_sequence, "to": last},
        "anchor": {"sequence": start_sequence - 1, "hash": anchor_hash},
        "head": {"sequence": last if last is not None else start_sequence - 1, "hash": head},
        "events": {"file": EVENTS, "count": count},
        "checkpoints": listed,
        "certificates": {"audit": "certs/audit.pem", "chain": "certs/chain.pem"},
        "trust": "trust/roots.pem",
        "files": {name: _sha256_file(directory / name) for name in files},
    }
    if retention_years is not None:
        until = exported_at.astimezone(UTC)
        try:
            until = until.replace(year=until.year + retention_years)
        except ValueError:  # 29 February
            until = until.replace(year=until.year + retention_years, day=28)
        manifest["retention"] = {"years": retention_years, "keep_until": until.date().isoformat()}
    (directory / MANIFEST).write_text(
        json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return ExportSummary(directory, count, first, last, head, len(listed))


class _Lines:
    """The links of events.jsonl, read once; a line that is not an event ends the
    reading with :attr:`malformed` set."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.malformed: Break | None = None

    def __iter__(self) -> Iterator[Link]:
        sha256, fields = hashlib.sha256, _fields
        number, sequence = 0, None
        with self.path.open("rb", buffering=1 << 20) as f:
            for raw in f:
                number += 1
                line = raw[:-1] if raw[-1:] == b"\n" else raw
                try:
                    sequence_now, previous = fields(line)
                except (ValueError, TypeError, KeyError) as exc:
                    at = sequence + 1 if sequence is not None else None
                    self.malformed = Break(
                        at, "malformed", f"line {number} of {EVENTS} is not an event ({exc})"
                    )
                    return
                sequence = sequence_now
                # A plain tuple in Link's order (a million of them: no constructor call).
                yield sequence, previous, sha256(line).hexdigest(), None, line  # type: ignore[misc]


_PREVIOUS, _SEQUENCE = b'"previous_hash":"', b'"sequence":'


def _fields(line: bytes) -> tuple[int, str]:
    """(sequence, previous_hash) of one line. Canonical JSON sorts its keys: the
    top-level ``previous_hash`` is followed by ``principal`` and ``sequence``, and
    after it come only strings and numbers, where an unescaped quote cannot occur,
    so its last occurrence is the top-level one (a key of the same name inside
    ``details`` comes before). Lines not in that form are parsed as JSON. Either
    way the event's hash is over the line's bytes as they are, and a value read
    wrongly from a forged line can only make a link fail, never hold."""
    p = line.rfind(_PREVIOUS)
    if p > 0:
        s = line.find(_SEQUENCE, p + 82)
        if s > 0:
            e = line.find(b",", s + 11)
            try:
                return int(line[s + 11 : e if e > 0 else -1]), line[p + 17 : p + 81].decode()
            except ValueError:
                pass
    event = json.loads(line)
    sequence, previous_hash = event["sequence"], event["previous_hash"]
    if type(sequence) is not int or type(previous_hash) is not str:
        raise TypeError("sequence or previous_hash of the wrong type")
    return sequence, previous_hash


def _read_manifest(directory: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
        if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
            raise ValueError("not a dairi audit export")
        return manifest
    except (OSError, ValueError, AttributeError) as exc:
        raise ExportError(f"{directory} has no readable {MANIFEST} ({exc})") from exc


def trust_from_directory(directory: Path) -> Trust:
    """Every certificate of ``directory/*.pem`` is a root; ``audit.pem``, when there,
    pins the certificates allowed to sign checkpoints."""
    roots: list[bytes] = []
    for path in sorted(directory.glob("*.pem")):
        roots += read_pem_certificates(path)
    return Trust(tuple(roots), tuple(read_pem_certificates(directory / "audit.pem")))


def verify_export(directory: Path, trust_dir: Path | None = None) -> VerificationReport:
    """Verify an export: its checkpoints (signature, audit certificate, time-stamp),
    its events against them and against the recorded head, then the manifest's
    file hashes. Needs neither the database nor the service."""
    try:
        manifest = _read_manifest(directory)
    except ExportError as exc:
        return VerificationReport(
            False, 0, None, None, GENESIS_HASH, 0, None, (Break(None, "malformed", exc.message),)
        )
    notes = []
    offered = tuple(
        read_pem_certificates(directory / "certs" / "audit.pem")
        + read_pem_certificates(directory / "certs" / "chain.pem")
    )
    if trust_dir is not None:
        base = trust_from_directory(trust_dir)
    else:
        base = Trust(tuple(read_pem_certificates(directory / "trust" / "roots.pem")))
        notes.append("trusting the roots the export carries; pass --trust DIR with your own")
    trust = Trust(base.roots_der, base.audit_certificates_der, certificates_der=offered)

    def read(name: str | None) -> bytes | None:
        if not name:
            return None
        try:
            return (directory / name).read_bytes()
        except OSError:
            return b""

    stored = [
        StoredCheckpoint(
            int(c["sequence"]),
            read(c["statement"]) or b"",
            read(c["signature"]) or b"",
            read(c.get("timestamp")),
        )
        for c in manifest.get("checkpoints", [])
    ]
    if not (directory / EVENTS).is_file():
        return VerificationReport(
            False,
            0,
            None,
            None,
            GENESIS_HASH,
            0,
            None,
            (Break(None, "malformed", f"{EVENTS} is missing"),),
        )
    anchor, head = manifest["anchor"], manifest["head"]
    lines = _Lines(directory / EVENTS)
    report = verify_log(
        lines,
        stored,
        trust,
        start_sequence=int(anchor["sequence"]) + 1,
        start_hash=str(anchor["hash"]),
        head=(int(head["sequence"]), str(head["hash"])),
        notes=notes,
    )
    breaks = list(report.breaks)
    if lines.malformed is not None:
        breaks = [b for b in breaks if b.kind != "truncated"] + [lines.malformed]
    if not breaks:
        for name, expected in manifest.get("files", {}).items():
            path = directory / name
            if not path.is_file() or _sha256_file(path) != expected:
                breaks.append(
                    Break(None, "manifest_mismatch", f"{name} is not the file the manifest lists")
                )
    return VerificationReport(
        not breaks,
        report.events,
        report.first_sequence,
        report.last_sequence,
        report.head_hash,
        report.checkpoints,
        report.last_checkpoint,
        tuple(breaks),
        report.notes,
    )
