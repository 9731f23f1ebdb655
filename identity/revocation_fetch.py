"""Revocation fetching within a time budget per certificate check, OCSP and CRL
overlapping, and a circuit breaker per responder (issue 16 item 8).

pyhanko-certvalidator 0.33 asks a certificate's OCSP responder and, when that
gives no answer, its CRL distribution point — one after the other, each request
bounded only by a per-request time-out (10 s in its requests backend), nothing
bounding the whole check, and a dead responder asked again by every check. A
hanging responder made one check take 20 s. :class:`RevocationFetcherBackend`
keeps pyhanko-certvalidator's fetchers (URL handling, OCSP requests and response
checks, CRL parsing, the per-URL sharing of in-flight requests) and replaces only
their transport seam (``_get``/``_post``, pinned to 0.33) and the OCSP entry point:

- **budget**: pyhanko-certvalidator takes one set of fetchers per
  ``ValidationContext``, i.e. per certificate check, so each ``get_fetchers()``
  starts a deadline. Every request gets the time left (connect, each read and the
  whole body) and none starts once it is spent. A fetch that fails is a fetch
  error, which under ``revocation_mode="require"`` makes the check end as
  "no revocation status" (``InsufficientRevinfoError``) — never as good.
- **overlap**: when the OCSP responder has not answered within ``hedge_seconds``
  the certificate's CRL fetch starts beside it; the validator's own CRL fetch
  joins that request (pyhanko's fetchers share in-flight requests by URL), so a
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

HTTP requests run on daemon threads of their own, not the event loop's default
executor: ``asyncio.run`` waits for that executor at exit, so an abandoned
request there would hold the check past its budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
from pyhanko_certvalidator.errors import OCSPFetchError
from pyhanko_certvalidator.fetchers.api import FetcherBackend, Fetchers, FetchLimits
from pyhanko_certvalidator.fetchers.common_utils import FetchBudget
from pyhanko_certvalidator.fetchers.requests_fetchers.cert_fetch_client import (
    RequestsCertificateFetcher,
)
from pyhanko_certvalidator.fetchers.requests_fetchers.crl_client import RequestsCRLFetcher
from pyhanko_certvalidator.fetchers.requests_fetchers.ocsp_client import RequestsOCSPFetcher
from pyhanko_certvalidator.util import get_relevant_crl_dps

logger = logging.getLogger(__name__)
T = TypeVar("T")

HEDGE_SECONDS = 0.5  # an OCSP responder slower than this gets the CRL fetched beside it
UNBUDGETED_TIMEOUT = 10.0  # per request when no budget is set (pyhanko's own default)
_CHUNK = 64 * 1024

# (method, absolute URL, body) -> (status, content type, body): a responder reached
# in process instead of over the network (the development PKI, tests).
Transport = Callable[[str, str, bytes | None], tuple[int, str, bytes]]


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

    def __init__(self, *, failures_to_open: int = 1, open_seconds: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
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
            logger.warning("revocation responder %s failed (%s); skipped for %s s, "
                           "then tried again", url, reason, self.open_seconds)

    def released(self, url: str) -> None:
        """A request to ``url`` ended without proving anything either way (it was cut
        short by its check's budget): a half-open trial may be made again."""
        with self._lock:
            entry = self._responders.get(url)
            if entry is not None:
                entry.trial = False


# --- the fetchers ------------------------------------------------------------------


class _Check:
    """One certificate check: its deadline and the policy its requests follow."""

    def __init__(self, backend: RevocationFetcherBackend) -> None:
        self.budget = backend.budget_seconds
        self.deadline = None if self.budget is None else time.monotonic() + self.budget
        self.breaker = backend.breaker
        self.transport = backend.transport
        self.hedge_seconds = backend.hedge_seconds

    def remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    async def send(self, method: str, url: str, body: bytes | None,
                   headers: dict[str, str]) -> requests.Response:
        """One request within the check's budget and the responder's breaker. Raises a
        ``requests.RequestException`` (which pyhanko-certvalidator turns into a fetch
        error) when the budget is spent, the breaker is open or the request fails."""
        remaining = self.remaining()
        if remaining is not None and remaining <= 0:
            raise requests.Timeout(f"revocation budget of {self.budget} s spent; "
                                   f"{url} not asked")
        if self.breaker is not None and not self.breaker.admit(url):
            raise requests.ConnectionError(f"{url} skipped: it failed recently")
        # A time-out counts against the responder only if it had a fair share of the
        # budget; one started with the last crumbs proves nothing about it.
        fair = remaining is None or self.budget is None or remaining >= self.budget / 2
        if self.transport is not None:
            return self._in_process(method, url, body)
        timeout = UNBUDGETED_TIMEOUT if remaining is None else remaining
        future = _on_thread(lambda: self._http(method, url, body, headers, timeout, fair))
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise requests.Timeout(f"{url} did not answer within {timeout:.1f} s") from None

    def _record(self, url: str, error: BaseException | None, fair: bool) -> None:
        if self.breaker is None:
            return
        if error is None:
            self.breaker.succeeded(url)
        elif isinstance(error, requests.Timeout) and not fair:
            self.breaker.released(url)
        else:
            self.breaker.failed(url, str(error) or type(error).__name__)

    def _http(self, method: str, url: str, body: bytes | None, headers: dict[str, str],
              timeout: float, fair: bool) -> requests.Response:
        """The request itself, on its own thread; reports to the breaker when it ends,
        whether or not the check still waits for it."""
        ends = time.monotonic() + timeout
        try:
            with requests.request(method, url, data=body, headers=headers, timeout=timeout,
                                  stream=True) as response:
                if response.status_code != 200:
                    raise requests.RequestException(f"status code {response.status_code}")
                chunks = []
                for chunk in response.iter_content(_CHUNK):  # a slow drip ends too
                    chunks.append(chunk)
                    if time.monotonic() > ends:
                        raise requests.Timeout(f"{url} sent its answer too slowly")
                response._content = b"".join(chunks)
        except BaseException as exc:
            self._record(url, exc, fair)
            raise
        self._record(url, None, fair)
        return response

    def _in_process(self, method: str, url: str, body: bytes | None) -> requests.Response:
        transport = self.transport
        assert transport is not None
        try:
            status, content_type, content = transport(method, url, body)
            if status != 200:
                raise requests.RequestException(f"status code {status}")
        except BaseException as exc:
            self._record(url, exc, True)
            raise
        self._record(url, None, True)
        response = requests.Response()
        response.status_code = status
        response.headers["Content-Type"] = content_type
        response._content = content
        response.url = url
        return response


def _on_thread(work: Callable[[], T]) -> asyncio.Future[T]:
    """Run ``work`` on a daemon thread of its own; its outcome as a future of the
    running loop (dropped if the loop is gone by then)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def deliver(setter: Callable[[Any], None], value: Any) -> None:
        if not future.done():
            setter(value)

    def run() -> None:
        try:
            outcome: tuple[Callable[[Any], None], Any] = (future.set_result, work())
        except BaseException as exc:
            outcome = (future.set_exception, exc)
        with contextlib.suppress(RuntimeError):  # the check ended and its loop closed
            loop.call_soon_threadsafe(deliver, *outcome)

    threading.Thread(target=run, name="revocation-fetch", daemon=True).start()
    return future


class _Budgeted:
    """Replaces the requests fetchers' transport seam with the check's ``send``."""

    check: _Check
    user_agent: str

    def _headers(self, acceptable_content_types: tuple[str, ...]) -> dict[str, str]:
        return {"Accept": ",".join(acceptable_content_types), "User-Agent": self.user_agent}

    def _get(self, url, *, acceptable_content_types):  # type: ignore[no-untyped-def]
        return self.check.send("GET", url, None, self._headers(acceptable_content_types))

    def _post(self, url, data, *, content_type, acceptable_content_types):  # type: ignore[no-untyped-def]
        headers = self._headers(acceptable_content_types) | {"Content-Type": content_type}
        return self.check.send("POST", url, data, headers)


class _CRL(_Budgeted, RequestsCRLFetcher):
    pass


class _Certs(_Budgeted, RequestsCertificateFetcher):
    pass


class _OCSP(_Budgeted, RequestsOCSPFetcher):
    crl_fetcher: _CRL
    early_crls: set[asyncio.Future[bool]]  # referenced until done

    async def fetch(self, cert, authority):  # type: ignore[no-untyped-def]
        """The OCSP response. If it is slow in coming the CRL fetch starts beside it,
        and if the CRL arrives first this fetch gives up (an ``OCSPFetchError``) so
        that the validator goes on to the CRL at once; the OCSP request itself runs
        on, bounded by the budget, and still tells the breaker how it ended."""
        job = asyncio.ensure_future(super().fetch(cert, authority))
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
            raise OCSPFetchError("no OCSP response yet, and the CRL has arrived")
        return await job

    async def _fetch_crl(self, cert) -> bool:  # type: ignore[no-untyped-def]
        """Whether the certificate's CRLs arrived. They stay in the CRL fetcher, whose
        requests the validator's own CRL fetch shares; so does a failure."""
        try:
            return bool(await self.crl_fetcher.fetch(cert))
        except Exception:  # the validator meets it when it asks for the CRL
            return False


class RevocationFetcherBackend(FetcherBackend):
    """pyhanko-certvalidator fetchers with a budget per check, OCSP/CRL overlap and a
    per-responder breaker (see the module docstring).

    ``budget_seconds=None`` means no budget (each request 10 s); ``breaker=None`` no
    breaker; ``hedge_seconds=None`` no early CRL. ``transport`` sends requests to a
    function in process instead of over HTTP.
    """

    def __init__(self, *, budget_seconds: float | None = 4.0,
                 breaker: ResponderBreaker | None = None,
                 hedge_seconds: float | None = HEDGE_SECONDS,
                 transport: Transport | None = None,
                 limits: FetchLimits = FetchLimits()) -> None:  # noqa: B008
        if budget_seconds is not None and budget_seconds <= 0:
            raise ValueError("budget_seconds must be positive")
        self.budget_seconds = budget_seconds
        self.breaker = breaker
        self.hedge_seconds = hedge_seconds
        self.transport = transport
        self.limits = limits

    def get_fetchers(self) -> Fetchers:
        """Fresh fetchers for one certificate check; its budget starts now."""
        budget = FetchBudget(self.limits)
        check = _Check(self)
        ocsp, crl, certs = _OCSP(budget=budget), _CRL(budget=budget), _Certs(budget=budget)
        for fetcher in (ocsp, crl, certs):
            fetcher.check = check
        ocsp.crl_fetcher, ocsp.early_crls = crl, set()
        return Fetchers(ocsp_fetcher=ocsp, crl_fetcher=crl, cert_fetcher=certs)

    async def close(self) -> None:
        return None
