"""Talking to web services: the errors a source raises, retries, and one HTTP GET.

Network faults are handled in one place (:func:`retry_call`): 429 honours ``Retry-After``;
5xx, timeouts and dropped connections get a bounded exponential back-off; everything else is
a :class:`errors.TracklensError` with a one-line message. Sleeps go through
:class:`RetryPolicy` so tests run instantly.
"""

from __future__ import annotations

import email.utils
import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

from tracklens.errors import TracklensError

logger = logging.getLogger("tracklens.acquire")

# --- errors ----------------------------------------------------------------------------------


class AcquireError(TracklensError):
    """A remote service refused or failed a request in a way retrying will not fix."""


class NotFoundError(AcquireError):
    """The service has no such item (HTTP 404 or an equivalent error body)."""


class ForbiddenError(AcquireError):
    """The service refused the request (HTTP 403)."""


class RateLimitError(AcquireError):
    """Still rate-limited (HTTP 429) after the allowed retries."""


class ServiceError(AcquireError):
    """Server errors (5xx), timeouts or dropped connections outlasted the allowed retries."""


class NoPreviewError(AcquireError):
    """A track has no preview to download (no URL, no ISRC, or none on Deezer)."""


def failure_kind(exc: Exception) -> str:
    """A short category for grouping failures in summaries."""
    for kind, name in ((RateLimitError, "rate-limited"), (ServiceError, "network/server error"),
                       (NotFoundError, "not found"), (ForbiddenError, "forbidden"),
                       (NoPreviewError, "no preview")):
        if isinstance(exc, kind):
            return name
    return "failed"


# --- retries ---------------------------------------------------------------------------------


class Transient(Exception):
    """A failure worth retrying. ``retry_after`` (seconds) comes from the server when known."""

    def __init__(self, reason: str, *, status: int | None = None, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry a transient failure.

    max_attempts : int >= 1, tries in all (the first call included)
    base_delay, max_delay : seconds; the n-th retry waits ``min(max_delay, base_delay * 2**(n-1))``
    max_retry_after : seconds; a ``Retry-After`` longer than this gives up at once instead of
        blocking for minutes (Spotify sends hours when an app is throttled hard)
    sleep : called with the seconds to wait; None means ``time.sleep``
    """

    max_attempts: int = 5
    base_delay: float = 1.0
    max_delay: float = 30.0
    max_retry_after: float = 120.0
    sleep: Callable[[float], None] | None = None

    def backoff(self, retry: int) -> float:
        """Seconds before retry number ``retry`` (1-based) when the server gave no hint."""
        return min(self.max_delay, self.base_delay * 2 ** (retry - 1))

    def wait(self, seconds: float) -> None:
        (self.sleep or time.sleep)(seconds)


def retry_call(fn: Callable[[], object], *, what: str, policy: RetryPolicy):
    """Call ``fn()`` until it stops raising :class:`Transient`, within ``policy``.

    Raises RateLimitError (still 429) or ServiceError (5xx/timeouts) naming ``what`` once the
    attempts are used up; any other exception passes straight through.
    """
    last: Transient | None = None
    for attempt in range(1, policy.max_attempts + 1):
        try:
            return fn()
        except Transient as exc:
            last = exc
            if attempt == policy.max_attempts:
                break
            if exc.retry_after is not None:
                if exc.retry_after > policy.max_retry_after:
                    raise RateLimitError(
                        f"{what}: the server asks to wait {exc.retry_after:.0f} s (Retry-After), longer "
                        f"than the {policy.max_retry_after:.0f} s limit; try again later (re-running resumes)"
                    ) from None
                delay = max(0.0, exc.retry_after)
            else:
                delay = policy.backoff(attempt)
            logger.info("%s: %s; retry %d/%d in %.1f s", what, exc.reason, attempt,
                        policy.max_attempts - 1, delay)
            policy.wait(delay)
    assert last is not None
    if last.status == 429:
        raise RateLimitError(
            f"{what}: still rate-limited (HTTP 429) after {policy.max_attempts} attempts; "
            "try again later (re-running resumes)"
        )
    raise ServiceError(f"{what}: {last.reason} (gave up after {policy.max_attempts} attempts)")


def retry_after_seconds(headers) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), or None."""
    value = (headers or {}).get("Retry-After")
    if value is None:
        return None
    value = str(value).strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


# --- one HTTP GET ----------------------------------------------------------------------------

_thread_local = threading.local()


def default_session():
    """This thread's requests.Session (one per worker thread: Session is not documented thread-safe)."""
    import requests

    session = getattr(_thread_local, "session", None)
    if session is None:
        session = _thread_local.session = requests.Session()
    return session


def http_get(session, url: str, *, what: str, stream: bool = False, timeout: float = 15.0):
    """One GET: returns the response for 2xx, raises Transient for 429/5xx/network faults and
    AcquireError (NotFoundError/ForbiddenError) for the rest."""
    import requests

    try:
        response = session.get(url, stream=stream, timeout=timeout)
    except requests.Timeout as exc:
        raise Transient(f"timed out ({type(exc).__name__})") from None
    except requests.ConnectionError as exc:
        raise Transient(f"connection failed ({type(exc).__name__})") from None
    status = response.status_code
    if status < 300:
        return response
    response.close()
    if status == 429 or status >= 500:
        raise Transient(f"HTTP {status}", status=status, retry_after=retry_after_seconds(response.headers))
    if status == 404:
        raise NotFoundError(f"{what}: HTTP 404 Not Found")
    if status == 403:
        raise ForbiddenError(f"{what}: HTTP 403 Forbidden (an expired signed link?)")
    raise AcquireError(f"{what}: HTTP {status}")
