"""Revocation fetching within a time budget per certificate check, OCSP and CRL
overlapping, and a circuit breaker per responder (issue 16 item 8).

pyhanko-certvalidator 0.33 asks a certificate's OCSP responder and, when that
gives no answer, its CRL distribution point — one after the other, each request
bounded only by a per-request time-out (10 s in its requests backend), nothing
bounding the whole check, and a dead responder asked again by every check. A
hanging responder made one check take 20 s. :class:`RevocationFetcherBackend`
keeps pyhanko-certvalidator's fetchers (URL handling, OCSP requests and response
checks, CRL parsing, the per-URL sharing of in-flight requests), made by its public
``RequestsFetcherBackend``, and wraps them in its public fetcher interfaces
(``OCSPFetcher``, ``CRLFetcher``, ``CertificateFetcher``; issue 10 item 6 — until
then the transport seam ``_get``/``_post`` was overridden):

- **budget**: pyhanko-certvalidator takes one set of fetchers per
  ``ValidationContext``, i.e. per certificate check, so each ``get_fetchers()``
  starts a deadline. Every fetch gets the time left (it is also its requests'
  time-out, so one left running when its check ends still ends by the deadline)
  and none starts once it is spent. A fetch that fails is a fetch
  error, which under ``revocation_mode="require"`` makes the check end as
  "no revocation status" (``InsufficientRevinfoError``) — never as good.
- **overlap**: when the OCSP responder has not answered within ``hedge_seconds``
  the certificate's CRL fetch starts beside it; the validator's own CRL fetch
  joins that fetch (one CRL fetch per certificate and check), so a
  hanging OCSP responder leaves the CRL most of the budget instead of none. If
  the CRL arrives first the OCSP fetch gives up, and the validator decides on the
  CRL at once — right for policies where either answer suffices, which is the
  only one dairi uses (``revocation_mode="require"``). A prompt OCSP answer
  costs no CRL download.
- **breaker**: :class:`ResponderBreaker`, keyed by responder URL. A responder
  whose request failed ``failures_to_open`` times in a row is skipped — the
  fetch fails at once — for ``open_seconds``; then one request is let through
  (half-open): an answer closes the breaker, a failure opens it for another
  interval. So a dead responder costs one time-out per interval, not one per
  request. It lives in the process (each gunicorn worker has its own).

pyhanko's requests fetchers send each request from a thread of the event loop's
default executor, which ``asyncio.run`` waits for at exit: a check's loop gets a
shared executor that it does not wait for, so an abandoned request does not hold
the check (it ends by itself by the deadline, and then tells the breaker).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
from pyhanko_certvalidator.errors import CertificateFetchError, CRLFetchError, OCSPFetchError
from pyhanko_certvalidator.fetchers.api import (
    CertificateFetcher,
    CRLFetcher,
    FetcherBackend,
    Fetchers,
    FetchLimits,
    OCSPFetcher,
)
from pyhanko_certvalidator.fetchers.common_utils import enumerate_delivery_point_urls
from pyhanko_certvalidator.fetchers.requests_fetchers import RequestsFetcherBackend
from pyhanko_certvalidator.util import get_ocsp_urls, get_relevant_crl_dps, issuer_serial

logger = logging.getLogger(__name__)
T = TypeVar("T")

HEDGE_SECONDS = 0.5  # an OCSP responder slower than this gets the CRL fetched beside it
UNBUDGETED_TIMEOUT = 10.0  # per request when no budget is set (pyhanko's own default)


# --- the breaker -------------------------------------------------------------------


@dataclass
class _Responder:
    failures: int = 0
    open_until: float | None = None  # set while open or half-open
    trial: bool = False  # the one half-open request is in flight


class ResponderBreaker:
    """A circuit breaker per responder URL: closed, open (skipped), half-open (one try).

    Thread-safe; meant to be shared by every check of one process.
    """

    def __init__(
        self,
        *,
        failures_to_open: int = 1,
        open_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failures_to_open < 1 or open_seconds <= 0:
            raise ValueError("failures_to_open must be >= 1 and open_seconds > 0")
        self.failures_to_open = failures_to_open
        self.open_seconds = open_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._responders: dict[str, _Responder] = {}

    def state(self, url: str) -> str:
        """``"closed"``, ``"open"`` or ``"half-open"`` (the interval is over)."""
        with self._lock:
            entry = self._responders.get(url)
            if entry is None or entry.open_until is None:
                return "closed"
            return "open" if self._clock() < entry.open_until else "half-open"

    def admit(self, url: str) -> bool:
        """Whether a request to ``url`` may be sent now. In half-open state only one
        caller is admitted until it reports back (:meth:`succeeded`, :meth:`failed`
        or :meth:`released`)."""
        with self._lock:
            entry = self._responders.get(url)
            if entry is None or entry.open_until is None:
                return True
            if self._clock() < entry.open_until or entry.trial:
                return False
            entry.trial = True
            return True

    def succeeded(self, url: str) -> None:
        """``url`` answered: close its breaker."""
        with self._lock:
            entry = self._responders.pop(url, None)
        if entry is not None and entry.open_until is not None:
            logger.warning("revocation responder %s answers again", url)

    def failed(self, url: str, reason: str) -> None:
        """A request to ``url`` failed (time-out, refusal, error status)."""
        with self._lock:
            entry = self._responders.setdefault(url, _Responder())
            entry.failures += 1
            if not entry.trial and entry.failures < self.failures_to_open:
                return
            was_open = entry.open_until is not None
            entry.open_until = self._clock() + self.open_seconds
            entry.trial = False
        if not was_open:  # one log line per outage, not one per request
            logger.warning(
                "revocation responder %s failed (%s); skipped for %s s, then tried again",
                url,
                reason,
                self.open_seconds,
            )

    def released(self, url: str) -> None:
        """A request to ``url`` ended without proving anything either way (it was cut
        short by its check's budget): a half-open trial may be made again."""
        with self._lock:
            entry = self._responders.get(url)
            if entry is not None:
                entry.trial = False


# --- the fetchers ------------------------------------------------------------------


def _ocsp_urls(cert: Any) -> list[str]:
    return list(get_ocsp_urls(cert))


def _crl_urls(cert: Any) -> list[str]:
    return [
        url
        for point in get_relevant_crl_dps(cert, use_deltas=True)
        for url in enumerate_delivery_point_urls(point)
    ]


class _Check:
    """One certificate check: its deadline and the policy its fetches follow."""

    def __init__(self, backend: RevocationFetcherBackend) -> None:
        self.budget = backend.budget_seconds
        self.deadline = None if self.budget is None else time.monotonic() + self.budget
        self.breaker = backend.breaker
        self.hedge_seconds = backend.hedge_seconds
        self.detached = False

    def remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    def request_timeout(self) -> float:
        """The time-out of a request sent now: the time left of the budget."""
        remaining = self.remaining()
        return UNBUDGETED_TIMEOUT if remaining is None else max(remaining, 0.05)

    def _detach_requests(self) -> None:
        """Let the check's event loop end without waiting for requests it abandoned.

        pyhanko's requests fetchers send from the loop's default executor, which
        ``asyncio.run`` shuts down, waiting, when the check ends: a hanging OCSP
        request would hold a check decided on the CRL until the request's own
        time-out. The loop's default executor becomes the process's shared one
        (public asyncio API), which a closing loop does not wait for; each request
        still ends by itself within its time-out (the time left) and tells the breaker
        how it ended when it does, whether or not its check still waits for it."""
        if not self.detached:
            asyncio.get_running_loop().set_default_executor(_shared_executor())
            self.detached = True

    async def guarded(
        self,
        urls: list[str],
        fetch: Callable[[], Awaitable[T]],
        error: Callable[[str], Exception],
        *,
        answered: Callable[[T], bool] = lambda _: True,
    ) -> T:
        """``fetch()`` (one of pyhanko-certvalidator's own fetches, which asks ``urls``)
        within the check's budget and the responders' breaker. Raises ``error(...)`` —
        the fetch error pyhanko-certvalidator expects of that fetcher — when the budget
        is spent, every responder is skipped, or the time left runs out."""
        self._detach_requests()
        remaining = self.remaining()
        if remaining is not None and remaining <= 0:
            raise error(f"revocation budget of {self.budget} s spent; {', '.join(urls)} not asked")
        breaker = self.breaker
        admitted = [u for u in urls if breaker.admit(u)] if breaker is not None else urls
        if urls and not admitted:
            raise error(f"{', '.join(urls)} skipped: failed recently")
        # A time-out counts against a responder only if it had a fair share of the
        # budget; one started with the last crumbs proves nothing about it.
        fair = remaining is None or self.budget is None or remaining >= self.budget / 2
        # HTTP requests this fetch sends report to the breaker themselves when they end
        # (_RequestsOf); a fetch that sent none (in process, or joined another's
        # request) reports here.
        requests_of = _RequestsOf(self, admitted, fair)
        token = _FETCH.set(requests_of)
        try:
            result = await asyncio.wait_for(fetch(), remaining)
        except TimeoutError:
            self._record_unless(requests_of, "time-out" if fair else None)
            raise error(f"{', '.join(urls)} did not answer within {remaining:.1f} s") from None
        except asyncio.CancelledError:  # the check ended first: proves nothing
            self._record_unless(requests_of, None)
            raise
        except Exception as exc:
            # The responder failed (no connection, time-out, error status: an OSError,
            # as requests' errors are, behind the library's fetch error), or it answered
            # something the library refused (an OCSP "unauthorized"): that is an answer.
            self._record_unless(requests_of, _transport_failure(exc) or "")
            raise
        finally:
            _FETCH.reset(token)
        self._record_unless(requests_of, "" if answered(result) else "no answer")
        return result

    def _record_unless(self, requests_of: _RequestsOf, failure: str | None) -> None:
        if not requests_of.sent:
            self._record(requests_of.urls, failure)

    def _record(self, urls: list[str], failure: str | None) -> None:
        """Tell the breaker how a fetch ended: ``""`` answered, a reason failed, None cut
        short by the budget (proves nothing either way)."""
        if self.breaker is None:
            return
        for url in urls:
            if failure == "":
                self.breaker.succeeded(url)
            elif failure is None:
                self.breaker.released(url)
            else:
                self.breaker.failed(url, failure)


class _RequestsOf:
    """The HTTP requests one guarded fetch sends: each reports to the breaker when it
    ends, on its own thread (a requests error is a failure, its time-out being the
    budget a fair one; an error status is one too, pyhanko raising it as a requests
    error; anything else is an answer)."""

    def __init__(self, check: _Check, urls: list[str], fair: bool) -> None:
        self.check = check
        self.urls = urls
        self.fair = fair
        self.sent = 0

    def ended(self, future: Future[Any]) -> None:
        exc = None if future.cancelled() else future.exception()
        if future.cancelled() or (isinstance(exc, requests.Timeout) and not self.fair):
            self.check._record(self.urls, None)  # proves nothing about the responder
            return
        self.check._record(self.urls, "" if exc is None else (_transport_failure(exc) or ""))


# The guarded fetch whose requests the current task sends (asyncio copies it into the
# tasks pyhanko's fetchers create and into the requests' threads).
_FETCH: ContextVar[_RequestsOf | None] = ContextVar("dairi_revocation_fetch", default=None)


class _DetachedExecutor(ThreadPoolExecutor):
    """A thread pool that a closing event loop does not shut down (nor wait for), and
    that tells each guarded fetch when its requests end."""

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def]
        future = super().submit(fn, *args, **kwargs)
        owner = _FETCH.get()
        if owner is not None:
            owner.sent += 1
            future.add_done_callback(owner.ended)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        return None


_EXECUTOR: tuple[int, _DetachedExecutor] | None = None
_EXECUTOR_LOCK = threading.Lock()


def _shared_executor() -> _DetachedExecutor:
    """The process's executor for revocation requests (made anew in a forked child)."""
    global _EXECUTOR
    with _EXECUTOR_LOCK:
        if _EXECUTOR is None or _EXECUTOR[0] != os.getpid():
            _EXECUTOR = (
                os.getpid(),
                _DetachedExecutor(max_workers=32, thread_name_prefix="revocation-fetch"),
            )
        return _EXECUTOR[1]


def _transport_failure(exc: BaseException) -> str | None:
    """The text of the ``OSError`` (requests' errors are ones) behind a fetch error, or
    None when the failure was not the transport's."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError):
            return str(seen) or type(seen).__name__
        seen = seen.__cause__ or seen.__context__
    return None


class _CRL(CRLFetcher):
    """pyhanko-certvalidator's CRL fetcher within the check's budget and breaker; one
    fetch per certificate, shared by whoever asks for it (the OCSP fetcher's early
    CRL and the validator's own request). Each fetch gets fetchers of its own, made
    with the time left as their requests' time-out."""

    def __init__(self, make: Callable[[float], Fetchers], check: _Check) -> None:
        self.make = make
        self.check = check
        self._jobs: dict[Any, asyncio.Future[Iterable[Any]]] = {}
        self._inner: dict[Any, CRLFetcher] = {}

    async def fetch(self, cert, *, use_deltas=None):  # type: ignore[no-untyped-def]
        use_deltas = True if use_deltas is None else use_deltas  # the library's default
        key = (issuer_serial(cert), use_deltas)
        job = self._jobs.get(key)
        if job is None:
            job = asyncio.ensure_future(
                self.check.guarded(
                    _crl_urls(cert),
                    lambda: self._fetch(key, cert, use_deltas),
                    CRLFetchError,
                    answered=bool,
                )
            )
            self._jobs[key] = job
        return await asyncio.shield(job)

    async def _fetch(self, key, cert, use_deltas):  # type: ignore[no-untyped-def]
        inner = self._inner[key] = self.make(self.check.request_timeout()).crl_fetcher
        return await inner.fetch(cert, use_deltas=use_deltas)

    def fetched_crls(self):  # type: ignore[no-untyped-def]
        return [c for inner in list(self._inner.values()) for c in inner.fetched_crls()]

    def fetched_crls_for_cert(self, cert):  # type: ignore[no-untyped-def]
        serial = issuer_serial(cert)
        found = [inner for (s, _), inner in list(self._inner.items()) if s == serial]
        if not found:
            raise KeyError(serial)
        return [c for inner in found for c in inner.fetched_crls_for_cert(cert)]


class _OCSP(OCSPFetcher):
    """pyhanko-certvalidator's OCSP fetcher within the check's budget and breaker, with
    the certificate's CRL fetched beside a slow responder."""

    def __init__(self, make: Callable[[float], Fetchers], crl: _CRL, check: _Check) -> None:
        self.make = make
        self.crl = crl
        self.check = check
        self.inners: list[OCSPFetcher] = []
        self.early_crls: set[asyncio.Future[bool]] = set()  # referenced until done

    async def _fetch(self, cert, authority):  # type: ignore[no-untyped-def]
        inner = self.make(self.check.request_timeout()).ocsp_fetcher
        self.inners.append(inner)
        return await inner.fetch(cert, authority)

    async def fetch(self, cert, authority):  # type: ignore[no-untyped-def]
        """The OCSP response. If it is slow in coming the CRL fetch starts beside it,
        and if the CRL arrives first this fetch gives up (an ``OCSPFetchError``) so
        that the validator goes on to the CRL at once; the OCSP request itself runs
        on, bounded by the budget, and still tells the breaker how it ended."""
        job = asyncio.ensure_future(
            self.check.guarded(
                _ocsp_urls(cert), lambda: self._fetch(cert, authority), OCSPFetchError
            )
        )
        hedge = self.check.hedge_seconds
        if hedge is None or not get_relevant_crl_dps(cert, use_deltas=True):
            return await job
        done, _ = await asyncio.wait({job}, timeout=hedge)
        if done:
            return job.result()
        early = asyncio.ensure_future(self._fetch_crl(cert))
        self.early_crls.add(early)
        early.add_done_callback(self.early_crls.discard)
        done, _ = await asyncio.wait({job, early}, return_when=asyncio.FIRST_COMPLETED)
        if job not in done and early.result():
            job.add_done_callback(_consume)
            raise OCSPFetchError("no OCSP response yet, and the CRL has arrived")
        return await job

    async def _fetch_crl(self, cert) -> bool:  # type: ignore[no-untyped-def]
        """Whether the certificate's CRLs arrived. They stay in the CRL fetcher, whose
        fetch the validator's own CRL request shares; so does a failure."""
        try:
            return bool(await self.crl.fetch(cert, use_deltas=True))
        except Exception:  # the validator meets it when it asks for the CRL
            return False

    def fetched_responses(self):  # type: ignore[no-untyped-def]
        return [r for inner in list(self.inners) for r in inner.fetched_responses()]

    def fetched_responses_for_cert(self, cert):  # type: ignore[no-untyped-def]
        return [r for inner in list(self.inners) for r in inner.fetched_responses_for_cert(cert)]


def _consume(future: asyncio.Future[Any]) -> None:
    """Retrieve an abandoned fetch's outcome (asyncio would log it as never retrieved)."""
    if not future.cancelled():
        future.exception()


class _Certs(CertificateFetcher):
    """pyhanko-certvalidator's certificate (caIssuers) fetcher; none starts once the
    check's budget is spent."""

    def __init__(self, inner: CertificateFetcher, check: _Check) -> None:
        self.inner = inner
        self.check = check

    async def _bounded(self, source):  # type: ignore[no-untyped-def]
        remaining = self.check.remaining()
        if remaining is not None and remaining <= 0:
            raise CertificateFetchError("revocation budget spent; issuers not fetched")
        async for cert in source:
            yield cert

    def fetch_cert_issuers(self, cert):  # type: ignore[no-untyped-def]
        return self._bounded(self.inner.fetch_cert_issuers(cert))

    def fetch_crl_issuers(self, certificate_list):  # type: ignore[no-untyped-def]
        return self._bounded(self.inner.fetch_crl_issuers(certificate_list))

    def fetched_certs(self):  # type: ignore[no-untyped-def]
        return self.inner.fetched_certs()


# Makes the fetchers of one check (HTTP, or in process): per-request time-out, limits.
FetchersFactory = Callable[[float, FetchLimits], Fetchers]


def requests_fetchers(per_request_timeout: float, limits: FetchLimits) -> Fetchers:
    """pyhanko-certvalidator's own requests fetchers, through its public backend."""
    return RequestsFetcherBackend(per_request_timeout, limits=limits).get_fetchers()


class RevocationFetcherBackend(FetcherBackend):
    """pyhanko-certvalidator fetchers with a budget per check, OCSP/CRL overlap and a
    per-responder breaker (see the module docstring).

    Built on the library's public fetcher API only: the fetchers of
    ``RequestsFetcherBackend`` (or those ``fetchers`` makes, e.g. the development
    PKI's in-process ones) wrapped in ``OCSPFetcher``/``CRLFetcher``/
    ``CertificateFetcher`` implementations of dairi's.

    ``budget_seconds=None`` means no budget (each request 10 s); ``breaker=None`` no
    breaker; ``hedge_seconds=None`` no early CRL.
    """

    def __init__(
        self,
        *,
        budget_seconds: float | None = 4.0,
        breaker: ResponderBreaker | None = None,
        hedge_seconds: float | None = HEDGE_SECONDS,
        fetchers: FetchersFactory = requests_fetchers,
        limits: FetchLimits = FetchLimits(),  # noqa: B008 - frozen, shared
    ) -> None:
        if budget_seconds is not None and budget_seconds <= 0:
            raise ValueError("budget_seconds must be positive")
        self.budget_seconds = budget_seconds
        self.breaker = breaker
        self.hedge_seconds = hedge_seconds
        self.fetchers = fetchers
        self.limits = limits

    def get_fetchers(self) -> Fetchers:
        """Fresh fetchers for one certificate check; its budget starts now."""
        check = _Check(self)

        def make(timeout: float) -> Fetchers:
            return self.fetchers(timeout, self.limits)

        crl = _CRL(make, check)
        return Fetchers(
            ocsp_fetcher=_OCSP(make, crl, check),
            crl_fetcher=crl,
            cert_fetcher=_Certs(make(check.request_timeout()).cert_fetcher, check),
        )

    async def close(self) -> None:
        return None
