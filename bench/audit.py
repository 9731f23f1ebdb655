"""Audit benchmark (issue 14): verifying 1,000,000 events offline, and appending
with 8 concurrent writers on PostgreSQL.

Prints, in one run:

- verification: an export of ``--events`` events (default 1,000,000) with a
  checkpoint every ``--checkpoint-every`` events (default 10,000; signed by an
  audit key in SoftHSM, time-stamped by the development TSA), checked by
  :func:`audit.verify_export` — every line hashed and linked, every checkpoint's
  signature, certificate path and time-stamp checked, the manifest's file hashes
  checked. Beside it, the baseline: reading the same file and SHA-256 over each
  line with nothing else (what any verifier must at least do). Target: ≤ 30 s.
- appends: ``--writers`` threads (default 8), each with its own connection,
  appending one event per transaction through :class:`app.audit_trail.log.AuditLog`
  (row lock on the head) for ``--seconds`` (default 10); beside it the baseline of
  the same threads doing one plain INSERT per transaction into a table without a
  chain, and of one thread doing so (the chain commits one writer at a time, so a
  single writer's commit rate is its ceiling). The chain is verified afterwards
  (one linear chain, no gap).

The export's lines are made with ``json.dumps(sort_keys=True)``, checked equal to
:meth:`audit.AuditEvent.canonical` on every 10,000th event (RFC 8785 in pure
Python takes ~0.3 ms an event: five minutes for a million, and it is not what is
measured). The PostgreSQL tables live in a private schema, dropped afterwards.
From the project root::

    python -m bench.audit [--json] [--events N] [--postgresql URL]

The server defaults to ``TEST_DATABASE_URL``, else
``postgresql://postgres@127.0.0.1:5432/test``; ``--postgresql ''`` skips the appends.
With ``--json`` the last line is
``{"events": 1000000, "seconds": …, "append_per_s": …, …}``.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `import hsm` etc. work
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import asyncio
import hashlib
import json
import os
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from sqlalchemy import text

from audit import AuditEvent, CheckpointSigner, take_checkpoint, verify_export, write_export
from audit.chain import GENESIS_HASH
from bench._setup import DER, BenchEnv, bench_environment
from devpki import InProcessTimeStamper
from devpki.ca import end_entity_key_usage
from hsm import KeyAlgorithm

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
TAGS = (
    "mandate:grant:issued",
    "signature:pades:created",
    "auth:login:refused",
    "signature:sad:issued",
)


def _audit_signer(env: BenchEnv) -> CheckpointSigner:
    ref = env.hsm.generate_key(KeyAlgorithm.RSA_2048)
    public_key = serialization.load_der_public_key(env.hsm.public_key_info(ref))
    cert = env.pki.cas["service-root"].issue(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dairi Bench Audit")]),
        public_key,
        now=datetime.now(UTC) - timedelta(days=800),  # type: ignore[arg-type]
        key_usage=end_entity_key_usage(non_repudiation=True),
        lifetime=timedelta(days=1825),
    )
    return CheckpointSigner(cert.public_bytes(DER), (), lambda data: env.hsm.sign(ref, data))


class _FastEvent:
    """An event whose canonical JSON is made by the C json encoder (equal to RFC 8785
    for these values: ASCII keys, no floats), so that generating a million is quick."""

    __slots__ = ("line", "sequence")

    def __init__(self, sequence: int, line: bytes) -> None:
        self.sequence, self.line = sequence, line

    def canonical(self) -> bytes:
        return self.line


def _events(count: int, every: int, on_head) -> Any:  # type: ignore[no-untyped-def]
    previous = GENESIS_HASH
    dumps = json.dumps
    for n in range(1, count + 1):
        at = (T0 + timedelta(milliseconds=n * 37)).isoformat(timespec="microseconds")
        value = {
            "sequence": n,
            "occurred_at": at,
            "actor": f"person:{n % 977:08x}",
            "tag": TAGS[n % 4],
            "subject": f"mandate-{n % 50_000}",
            "principal": "7010001008844",
            "details": {"name": "山田\u3000太郎", "code": "MANDATE_EXPIRED", "n": n},
            "previous_hash": previous,
        }
        line = dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        if n % 10_000 == 1:
            event = AuditEvent(
                n,
                T0 + timedelta(milliseconds=n * 37),
                value["actor"],
                value["tag"],
                value["subject"],
                value["principal"],
                value["details"],
                previous,
            )
            assert event.canonical() == line, "json.dumps differs from RFC 8785 here"
        previous = hashlib.sha256(line).hexdigest()
        if n % every == 0 or n == count:
            on_head(n, previous)
        yield _FastEvent(n, line)


def bench_verification(env: BenchEnv, count: int, every: int, work: Path) -> dict[str, Any]:
    signer = _audit_signer(env)
    stamper = InProcessTimeStamper(env.pki.tsa)

    def stamp(digest: bytes) -> bytes:
        return asyncio.run(stamper.async_timestamp(digest, "sha256")).dump()

    checkpoints = []

    def on_head(sequence: int, head: str) -> None:
        checkpoints.append(
            take_checkpoint(
                sequence, head, T0 + timedelta(milliseconds=sequence * 37 + 5), signer, stamp
            )
        )

    started = time.perf_counter()
    directory = work / "export"
    root = env.pki.cas["service-root"].certificate.public_bytes(DER)
    # The checkpoints are signed while the events are generated (on_head); the list is
    # complete when write_export has consumed the generator, before it writes them.
    write_export(
        directory,
        _events(count, every, on_head),  # type: ignore[arg-type]
        checkpoints,
        audit_certificates_der=[signer.certificate_der],
        chain_der=[],
        roots_der=[root],
    )
    generated = time.perf_counter() - started
    trust = work / "trust"
    trust.mkdir()
    (trust / "root.pem").write_bytes(
        env.pki.cas["service-root"].certificate.public_bytes(serialization.Encoding.PEM)
    )

    started = time.perf_counter()
    with (directory / "events.jsonl").open("rb") as f:
        for line in f:
            hashlib.sha256(line.rstrip(b"\n")).digest()
    baseline = time.perf_counter() - started

    started = time.perf_counter()
    report = verify_export(directory, trust)
    seconds = time.perf_counter() - started
    if not report.intact or report.events != count:
        raise SystemExit(f"verification failed: {report.as_dict()}")
    return {
        "events": count,
        "checkpoints": report.checkpoints,
        "seconds": round(seconds, 2),
        "baseline_sha256_seconds": round(baseline, 2),
        "file_mb": round((directory / "events.jsonl").stat().st_size / 1e6, 1),
        "generate_seconds": round(generated, 1),
    }


def _run_threads(writers: int, seconds: float, work) -> int:  # type: ignore[no-untyped-def]
    done = [0] * writers
    stop = time.perf_counter() + seconds
    errors: list[BaseException] = []

    def loop(i: int) -> None:
        try:
            with work() as step:
                while time.perf_counter() < stop:
                    step()
                    done[i] += 1
        except BaseException as exc:  # reported after the run
            errors.append(exc)

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return sum(done)


def bench_appends(url: str, writers: int, seconds: float) -> dict[str, Any]:
    import contextlib

    from app.audit_trail.checkpoints import verify_database
    from app.audit_trail.log import AuditLog
    from app.database import make_engine, make_session_factory
    from app.dev.private_schema import private_schema
    from app.migrate import migrate
    from audit import Trust

    with private_schema(url, prefix="bench_audit") as schema_url:
        migrate(schema_url)
        engine = make_engine(schema_url, pool_size=writers + 2)
        factory = make_session_factory(engine)
        with engine.begin() as connection:
            connection.execute(
                text("CREATE TABLE bench_raw (id BIGSERIAL PRIMARY KEY, payload TEXT NOT NULL)")
            )

        @contextlib.contextmanager
        def appender():  # type: ignore[no-untyped-def]
            with factory() as session:

                def step() -> None:
                    with session.begin():
                        AuditLog(session).append(
                            "signature:pades:created",
                            actor="person:bench",
                            subject="doc",
                            principal="7010001008844",
                            details={"name": "山田\u3000太郎"},
                        )

                yield step

        @contextlib.contextmanager
        def raw_insert():  # type: ignore[no-untyped-def]
            with engine.connect() as connection:

                def step() -> None:
                    with connection.begin():
                        connection.execute(
                            text("INSERT INTO bench_raw (payload) VALUES (:p)"), {"p": "x" * 300}
                        )

                yield step

        baseline = _run_threads(writers, seconds, raw_insert)
        # The chain lets one writer commit at a time: one writer's plain INSERTs are
        # the ceiling a serialised append can reach on this server.
        serial = _run_threads(1, seconds, raw_insert)
        appended = _run_threads(writers, seconds, appender)
        report = verify_database(factory, Trust(()))
        engine.dispose()
    if not report.intact or report.events != appended:
        raise SystemExit(f"the chain after concurrent appends: {report.as_dict()}")
    return {
        "writers": writers,
        "append_per_s": round(appended / seconds, 1),
        "baseline_insert_per_s": round(baseline / seconds, 1),
        "baseline_serial_insert_per_s": round(serial / seconds, 1),
        "appended": appended,
        "chain_intact": report.intact,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.audit")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--checkpoint-every", type=int, default=10_000)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--postgresql", default=os.environ.get("TEST_DATABASE_URL", DEFAULT_PG))
    args = parser.parse_args(argv)
    result: dict[str, Any] = {}
    with bench_environment() as env, tempfile.TemporaryDirectory(prefix="dairi-audit-") as tmp:
        verification = bench_verification(env, args.events, args.checkpoint_every, Path(tmp))
    print(
        f"verify {verification['events']} events, {verification['checkpoints']} checkpoints"
        f" ({verification['file_mb']} MB): {verification['seconds']} s"
        f" (baseline: SHA-256 of each line {verification['baseline_sha256_seconds']} s;"
        f" target ≤ 30 s)"
    )
    result.update(
        events=verification["events"],
        seconds=verification["seconds"],
        baseline_sha256_seconds=verification["baseline_sha256_seconds"],
        checkpoints=verification["checkpoints"],
    )
    appends = None
    if args.postgresql:
        appends = bench_appends(args.postgresql, args.writers, args.seconds)
        print(
            f"append with {appends['writers']} writers on PostgreSQL:"
            f" {appends['append_per_s']}/s (baseline: plain INSERT"
            f" {appends['baseline_insert_per_s']}/s with {appends['writers']} writers,"
            f" {appends['baseline_serial_insert_per_s']}/s with one); chain intact after"
            f" {appends['appended']} appends"
        )
    result["append_per_s"] = appends["append_per_s"] if appends else None
    for key in ("baseline_insert_per_s", "baseline_serial_insert_per_s"):
        result[key] = appends[key] if appends else None
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
