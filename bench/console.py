"""Console benchmark (issue 15): the web console's pages with 10,000 mandates and
100,000 audit events, through the served process, beside the API answering the same
question.

A throw-away installation of the service (``bench._setup.service_environment``) is
served by ``dairi serve``'s gunicorn (``app.dev.demo_server.DemoServer``, 2 workers).
As ``bench/signing.py`` does (:func:`bench.signing.make_signer`), a representative and
an employee log in with virtual cards and the representative grants the employee a
root mandate over HTTP. The database is then filled with ``--mandates`` more (default
10,000, over 1,000 corporations, generated as ``bench/mandates.py`` does) and
``--events`` audit events (default 100,000, a real hash chain, appended in batches).
The employee is made an auditor (who reads every corporation: the largest pages), is
signed in to the console through the cross-device flow (``dairi client approve``'s
calls) and one browser session (one connection, its cookie) asks, ``--rounds`` times
each (default 50):

- ``mandates``: ``/console/mandates`` (the first page of all 10,000), against
  ``GET /api/v1/mandates``;
- ``mandate``: ``/console/mandates/{id}`` of the granted mandate (its chain judged, its
  history from the audit trail, its signatures), against ``GET /api/v1/mandates/{id}/chain``;
- ``audit``: ``/console/audit`` (the first 50 of 100,000 events) and
  ``/console/audit?tag=mandate:*`` alternately, against ``GET /api/v1/audit/events``;
- ``authority``: ``/console/authority`` for the granted mandate's purpose, against
  ``GET /api/v1/authority``.

It prints the p50 and p95 of each page and of its API baseline (target: each page's
p95 ≤ 200 ms; reported, not enforced). From the project root::

    python bench/console.py [--json] [--rounds N] [--mandates N] [--events N]

With ``--json`` the last line is one JSON object:
``{"p95_ms": {"mandates": …, "mandate": …, "audit": …, "authority": …}}``.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `import hsm` etc. work
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlencode

import requests

from app.audit_trail.log import AuditLog
from app.client import ApiClient, directory_card
from app.client.console import approve_sign_in
from app.context import ServiceContext
from app.dev.demo_server import DemoServer
from app.people.models import Role, RoleAssignment
from app.settings import Settings
from bench._setup import service_environment
from bench.mandates import fill, generate
from bench.signing import ENTITY, Signer, make_signer

DEFAULT_ROUNDS = 50
DEFAULT_MANDATES = 10_000
DEFAULT_EVENTS = 100_000
EVENT_BATCH = 2_000
WORKERS = 2
TARGET_P95_MS = 200.0
PAGES = ("mandates", "mandate", "audit", "authority")


@dataclass(frozen=True)
class PageTiming:
    page_ms: list[float]
    api_ms: list[float]

    @staticmethod
    def p(samples: list[float], q: int) -> float:
        return round(statistics.quantiles(samples, n=100, method="inclusive")[q - 1], 1)


def populate(context: ServiceContext, mandates: int, events: int) -> tuple[float, float]:
    """The extra mandates and audit events; the seconds each took."""
    start = time.perf_counter()
    fill(context.engine, generate(mandates, datetime.now(UTC)))
    filled = time.perf_counter() - start
    start = time.perf_counter()
    tags = ("mandate:granted", "auth:login:succeeded", "signature:pades:created", "mandate:revoked")
    for offset in range(0, events, EVENT_BATCH):
        count = min(EVENT_BATCH, events - offset)
        with context.session_factory() as session:
            AuditLog(session).append_many(
                tags[(offset // EVENT_BATCH) % len(tags)],
                actor="bench",
                principal=f"0104{(offset // EVENT_BATCH) % 1000 + 1:08d}"[:13],
                details=[{"n": offset + i} for i in range(count)],
            )
            session.commit()
    return filled, time.perf_counter() - start


def make_auditor(context: ServiceContext, person_id: str) -> None:
    with context.session_factory() as session:
        session.add(
            RoleAssignment(person_id=person_id, role=Role.AUDITOR.value, granted_by="bench")
        )
        session.commit()


def console_session(url: str, card_dir: Path) -> requests.Session:
    """A browser's session signed in through the cross-device flow."""
    browser = requests.Session()
    browser.headers["Origin"] = url
    browser.post(url + "/console/sign-in", allow_redirects=False).raise_for_status()
    waiting = browser.get(url + "/console/sign-in/wait").text
    code = waiting.split('id="code">', 1)[1].split("<", 1)[0]
    with ApiClient(url) as device:
        approve_sign_in(device, directory_card(card_dir, "authentication"), code)
    home = browser.get(url + "/console/sign-in/wait")
    if not home.url.endswith("/console/") or home.status_code != 200:
        raise RuntimeError(f"the console sign-in did not end on the home page ({home.url})")
    return browser


def timed(call: Callable[[], requests.Response], what: str) -> float:
    start = time.perf_counter()
    response = call()
    elapsed = (time.perf_counter() - start) * 1000
    if response.status_code != 200:
        raise RuntimeError(f"{what}: {response.status_code} {response.text[:200]}")
    return elapsed


def measure(
    url: str, browser: requests.Session, api: requests.Session, signer: Signer, rounds: int
) -> dict[str, PageTiming]:
    mandate_id = api.get(url + "/api/v1/mandates", params={"grantee": signer.person_id}).json()[
        "items"
    ][0]["id"]
    purpose = {"principal": signer.request.principal, "action": "bid", "procuring_entity": ENTITY}
    pages: dict[str, tuple[list[str], str]] = {
        "mandates": (["/console/mandates"], "/api/v1/mandates"),
        "mandate": ([f"/console/mandates/{mandate_id}"], f"/api/v1/mandates/{mandate_id}/chain"),
        "audit": (["/console/audit", "/console/audit?tag=mandate:*"], "/api/v1/audit/events"),
        "authority": (
            ["/console/authority?" + urlencode(purpose)],
            "/api/v1/authority?" + urlencode(purpose),
        ),
    }
    found: dict[str, PageTiming] = {}
    for name, (paths, api_path) in pages.items():
        for path in paths:  # warm: each worker's first answer is not measured
            for _ in range(WORKERS * 2):
                timed(lambda p=path: browser.get(url + p), path)
        page_ms, api_ms = [], []
        for n in range(rounds):
            path = paths[n % len(paths)]
            page_ms.append(timed(lambda p=path: browser.get(url + p), path))
            api_ms.append(timed(lambda p=api_path: api.get(url + p), api_path))
        found[name] = PageTiming(page_ms, api_ms)
    return found


def run(
    settings: Settings, context: ServiceContext, args: argparse.Namespace
) -> dict[str, PageTiming]:
    work = settings.data_dir / "bench"
    load = ", ".join(f"{n:.1f}" for n in os.getloadavg())
    print(f"load average at the start: {load} ({os.cpu_count()} CPUs)")
    with DemoServer(settings, workers=WORKERS) as server:
        signer = make_signer(context, server.url, work / "cards")
        filled, appended = populate(context, args.mandates, args.events)
        print(
            f"{args.mandates:,} mandates inserted in {filled:.1f} s, {args.events:,} audit "
            f"events appended in {appended:.1f} s"
        )
        make_auditor(context, signer.person_id)
        browser = console_session(server.url, work / "cards" / "cards" / "employee")
        api = requests.Session()
        api.headers["Authorization"] = f"Bearer {signer.token}"
        return measure(server.url, browser, api, signer, args.rounds)


def print_report(found: dict[str, PageTiming], rounds: int) -> None:
    print(f"\nconsole pages through the served process ({rounds} requests each, one session)")
    print(f"{'page':<10} {'p50 ms':>8} {'p95 ms':>8}   {'API p50':>8} {'API p95':>8}   target")
    for name in PAGES:
        t = found[name]
        p95 = t.p(t.page_ms, 95)
        verdict = "met" if p95 <= TARGET_P95_MS else "NOT met"
        print(
            f"{name:<10} {t.p(t.page_ms, 50):>8} {p95:>8}   {t.p(t.api_ms, 50):>8} "
            f"{t.p(t.api_ms, 95):>8}   p95 <= {TARGET_P95_MS:.0f}: {verdict}"
        )


def as_json(found: dict[str, PageTiming]) -> str:
    return json.dumps({"p95_ms": {name: found[name].p(found[name].page_ms, 95) for name in PAGES}})


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS, help="requests per page")
    parser.add_argument("--mandates", type=int, default=DEFAULT_MANDATES)
    parser.add_argument("--events", type=int, default=DEFAULT_EVENTS)
    args = parser.parse_args(argv)
    if args.rounds < 2 or args.mandates < 1000 or args.events < 1:
        parser.error("--rounds >= 2, --mandates >= 1000 (one per corporation), --events >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with service_environment(access_token_seconds=86_400) as (settings, context):
        found = run(settings, context, args)
    print_report(found, args.rounds)
    if args.json:
        print(as_json(found))
    return 0


if __name__ == "__main__":
    sys.exit(main())
