"""Fetch what the prefetch lacks from the EHR's FHIR server: bounded, parallel, and honest about what it could not get.

CDS Hooks 2.0 §Prefetch: a key the client left out is fetched from `fhirServer` by running its template, with
`Authorization: Bearer <fhirAuthorization.access_token>` when the client gave one (unauthenticated otherwise: the
sandbox's open mode). This module is the `Fetcher` of prefetch.py:

- every key runs in parallel on a shared thread pool, over one shared connection pool (keep-alive between requests),
  both sized for several concurrent service calls' keys at once;
- the MedicationRequest and MedicationStatement searches ask for their Medications in the same search
  (`_include=MedicationRequest:medication`), so that a record whose drugs are `medicationReference`s needs no second
  round trip; the batched `Medication?_id=` search stays for what a server did not include (servers that ignore
  `_include`, prefetched Bundles), and a server that rejects the `_include` gets the plain search;
- one deadline covers the whole service call (every key, every page, and the Medication batch), and everything in
  it: connect, TLS, headers and body (outbound.py: at the deadline the call's sockets are shut down, so a server that
  drips bytes cannot stretch it); whatever has not arrived is an error for its key; the call answers only once its
  fetch threads have stopped, so none outlives it to starve the next calls;
- one byte budget covers every answer of the call (CDS_FETCH_MAX_BYTES), besides the cap on any one answer;
- the call may reach only the FHIR servers its caller is configured for (outbound.AllowedServers, decided in
  service_call.py), and a server not listed by URL only at global addresses (never loopback, private, link-local);
- searchset Bundles are followed through their `next` links, up to a page cap and a resource cap per key; a `next`
  link seen twice (a loop) stops the paging; what a cap cut off is reported as an error of the key (its resources
  are kept);
- a `next` link (absolute, or relative to fhirServer), like any URL we send the token to, must be on the
  fhirServer's origin (scheme, host and port) as urllib3 reads the prepared URL, which is where requests connects;
  a URL with a backslash, space or control character is never followed; redirects are not followed;
- any failure (unreachable, timeout, 401/403, 404, 5xx, invalid JSON, an OperationOutcome, a Bundle where a resource
  was expected or the reverse, the deadline) becomes a short reason in KeyResult.error: no URL, no token, no
  patient data, and no network detail (refused, timed out and unreachable read alike: a caller must not map the
  network through us). prefetch.gather turns errors of required keys into a 412 and reports the optional ones.

The access token is only ever put in the header of a request to the fhirServer's origin: it is never logged, stored
on the session, or placed in an error message.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import urljoin

import requests

from cds_service.record.json_text import parse_json

from . import outbound
from .fhir_medications import NOT_HTTP, MedicationFetching
from .fhir_answers import (
    UNREACHABLE,
    FetchError,
    check_status,
    included_count,
    resource_kind,
    transport_reason,
)
from .prefetch import KeyResult, bundle_resources
from .protocol import HookRequest
from .settings import Settings

log = logging.getLogger("cds_service.fhir_client")

ACCEPT = "application/fhir+json"
MAX_RESPONSE_BYTES = 32 * 1024 * 1024  # one page; a 500-Observation page is a few MB
MAX_CALL_BYTES = 32 * 1024 * 1024  # every answer of one call together (CDS_FETCH_MAX_BYTES)
STOP_GRACE_SECONDS = 0.5
"""After the deadline, how long a call waits for its fetch threads to stop (their sockets are already shut down; a
parse already under way finishes, bounded by the byte budget)."""
_CHUNK = 64 * 1024


class _NoCookies(requests.cookies.cookielib.DefaultCookiePolicy):
    """The session is shared by every call (and every EHR user): a cookie one answer sets must never ride along
    with another call's request."""

    def set_ok(self, cookie, request):  # noqa: D401 - cookielib API
        return False

    def return_ok(self, cookie, request):
        return False


@dataclass
class _Call:
    """What every task of one service call shares."""

    base: str  # fhirServer, without a trailing slash
    origin: tuple[str, str, int]  # outbound.origin_of(fhirServer)
    headers: dict[str, str]
    scope: outbound.Scope  # the call's deadline, byte budget and address rule
    cancelled: threading.Event
    # The environment's proxies and CA bundle for fhirServer (HTTPS_PROXY, NO_PROXY, REQUESTS_CA_BUNDLE...), resolved
    # once per call rather than once per request (see FhirClient.__init__).
    proxies: dict[str, str]
    verify: bool | str


class FhirClient(MedicationFetching):
    """The default Fetcher: thread-safe, one instance per application (gunicorn threads share it)."""

    def __init__(
        self,
        *,
        deadline_seconds: float = 4.0,
        connect_timeout_seconds: float = 1.0,
        read_timeout_seconds: float = 3.0,
        max_pages: int = 20,
        max_resources: int = 10_000,
        max_bytes: int = MAX_CALL_BYTES,
        max_workers: int = 128,
    ):
        self.deadline_seconds = deadline_seconds
        self.connect_timeout = connect_timeout_seconds
        self.read_timeout = read_timeout_seconds
        self.max_pages = max_pages
        self.max_resources = max_resources
        self.max_bytes = max_bytes
        self.session = requests.Session()
        self.session.cookies.set_policy(_NoCookies())
        # requests reads the environment (proxies, CA bundle, ~/.netrc) again on every request when trust_env is on:
        # ~0.5 ms of CPU a request, under the GIL, so nine parallel keys left one after another over ~14 ms. The
        # proxies and CA bundle are read once per call instead (_Call), and ~/.netrc never: its credentials would
        # replace the EHR's Bearer token (the only credential this client may send).
        self.session.trust_env = False
        # One thread and one kept-alive connection per concurrent fetch: a call's 9 keys plus its Medication batches
        # (at most 4), for each of a gunicorn worker's threads at once; threads are only started when needed. Every
        # fetch thread stops by its call's deadline (outbound.py), so the pool holds only the calls in progress.
        adapter = outbound.GuardedAdapter(pool_connections=16, pool_maxsize=max_workers, max_retries=0)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self._adapter = adapter
        self._max_workers = max_workers
        self._executor: ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()
        self._local = threading.local()

    @classmethod
    def from_settings(cls, settings: Settings) -> "FhirClient":
        return cls(
            deadline_seconds=settings.fetch_deadline_seconds,
            connect_timeout_seconds=settings.fetch_connect_timeout_seconds,
            read_timeout_seconds=settings.fetch_read_timeout_seconds,
            max_pages=settings.fetch_max_pages,
            max_resources=settings.fetch_max_resources,
            max_bytes=settings.fetch_max_bytes,
        )

    def close(self, wait: bool = False) -> None:
        """Stop the thread pool (waiting for requests still running, if asked) and close the connections."""
        with self._executor_lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=wait, cancel_futures=True)
        self.session.close()

    # ------------------------------------------------------------------ the Fetcher interface

    def fetch(self, request: HookRequest, queries: dict[str, str], continuations: dict[str, str]) -> dict[str, KeyResult]:
        """Run the absent keys' queries and follow the partial Bundles' next links, in parallel, within the deadline."""
        call = self._call(request)
        if call is None:
            return {key: KeyResult(error=NOT_HTTP, source="fetched") for key in [*queries, *continuations]}
        tasks: dict[str, Callable[[], KeyResult]] = {}
        for key, query in queries.items():
            tasks[key] = (lambda q=query: self._read_query_including_medications(call, q))
        for key, next_url in continuations.items():
            # The client's first page counts as one page; a relative link is relative to fhirServer (as the
            # server's own links are), and an absolute one is checked like them before anything is sent.
            url = urljoin(call.base + "/", next_url)
            tasks[key] = (lambda u=url: self._read_pages(call, u, pages_left=self.max_pages - 1, seen=set()))
        return self._run(call, tasks)

    # ------------------------------------------------------------------ one service call

    def _call(self, request: HookRequest) -> _Call | None:
        """The call's shared state; the deadline starts at the call's first fetch and covers the later ones."""
        base = str(request.fhir_server).rstrip("/")
        origin = outbound.origin_of(base)
        if origin is None:  # protocol.py already refuses these; never send anything to a non-http(s) URL
            return None
        current = getattr(self._local, "scope", None)
        if current is not None and current[0]() is request:
            scope = current[1]
        else:
            scope = outbound.Scope(self.deadline_seconds, max_bytes=self.max_bytes, name="fetch",
                                   allow_private=getattr(request, "fhir_server_listed", False))
            # A weak reference: the same HookRequest object (not an equal one) is the same service call.
            self._local.scope = (weakref.ref(request), scope)
        # The session's default headers (User-Agent, Accept-Encoding: gzip, keep-alive) with the call's own, merged
        # once per call: requests are sent through the adapter (_get_json), not Session.request.
        headers = {**self.session.headers, "Accept": ACCEPT}
        if request.fhir_authorization is not None:
            headers["Authorization"] = f"Bearer {request.fhir_authorization.access_token}"
        proxies, verify = _environment(base)
        return _Call(base=base, origin=origin, headers=headers, scope=scope, cancelled=threading.Event(),
                     proxies=proxies, verify=verify)

    def _pool(self) -> ThreadPoolExecutor:
        with self._executor_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=self._max_workers, thread_name_prefix="fhir-fetch")
            return self._executor

    def _run(self, call: _Call, tasks: dict[str, Callable[[], KeyResult]]) -> dict[str, KeyResult]:
        started = time.perf_counter()
        pool = self._pool()
        futures: dict[str, Future] = {key: pool.submit(self._guarded, key, task) for key, task in tasks.items()}
        _, pending = wait(futures.values(), timeout=max(0.0, call.scope.remaining()))
        call.cancelled.set()  # tasks still running stop at their next page, chunk or parse
        if pending:
            # The watchdog shuts the call's sockets down at the deadline; doing it here too spares waiting for it.
            call.scope.abort()
            for future in pending:
                future.cancel()
            _, pending = wait(pending, timeout=STOP_GRACE_SECONDS)
            if pending:  # e.g. a DNS lookup, which nothing can interrupt
                log.warning("fetch threads still running after the call's deadline", extra={"threads": len(pending)})
        deadline_message = f"not obtained within the fetch deadline of {call.scope.seconds:g} s"
        results: dict[str, KeyResult] = {}
        for key, future in futures.items():
            if future.done() and not future.cancelled():
                result = future.result()
                if result.error == UNREACHABLE and call.scope.aborted:
                    result.error = deadline_message  # what broke the connection was our own deadline
                results[key] = result
            else:
                results[key] = KeyResult(error=deadline_message, source="fetched")
        log.info(
            "fetched",
            extra={
                "keys": {key: ("error" if result.error else "ok") for key, result in results.items()},
                "resources": sum(len(result.resources) for result in results.values()),
                "ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )
        return results

    @staticmethod
    def _guarded(key: str, task: Callable[[], KeyResult]) -> KeyResult:
        try:
            return task()
        except FetchError as error:
            return KeyResult(error=str(error), source="fetched")
        except Exception as error:  # a bug must not become a 500 or a hang: the key is missing, and we say why
            log.error("fetch failed unexpectedly", extra={"key": key, "error": type(error).__name__})
            return KeyResult(error="internal error while fetching", source="fetched")

    # ------------------------------------------------------------------ reads and searches

    def _read_query(self, call: _Call, query: str) -> KeyResult:
        path = query.lstrip("/")
        url = f"{call.base}/{path}"
        resource_type = path.split("?", 1)[0].split("/", 1)[0]
        is_read = "?" not in path and "/" in path
        if not is_read:
            return self._read_pages(call, url, pages_left=self.max_pages, seen=set())
        resource = self._get_json(call, url, what="resource")
        if resource.get("resourceType") == "OperationOutcome":
            raise FetchError("the FHIR server answered with an OperationOutcome")
        if resource.get("resourceType") != resource_type:
            raise FetchError(f"the FHIR server answered with a {resource_kind(resource)} where a {resource_type} was expected")
        return KeyResult(resources=[resource], source="fetched")

    def _read_pages(self, call: _Call, url: str, *, pages_left: int, seen: set[str]) -> KeyResult:
        resources: list[dict] = []
        matched = 0  # resources of search.mode "match" (not "include"): what the Bundle's `total` counts
        pages = 0
        truncated: str | None = None
        bundle: dict = {}
        next_url: str | None = url
        while next_url is not None:
            if next_url in seen:
                truncated = f"the FHIR server's next links loop (page {pages + 1} repeats an earlier page); paging stopped"
                break
            if pages >= pages_left:
                truncated = f"only {pages} page{'' if pages == 1 else 's'} read (cap CDS_FETCH_MAX_PAGES={self.max_pages})"
                break
            if len(resources) >= self.max_resources:
                truncated = f"only {len(resources)} resources read (cap CDS_FETCH_MAX_RESOURCES={self.max_resources})"
                break
            seen.add(next_url)
            try:
                bundle = self._get_json(call, next_url, what="searchset Bundle")
                if bundle.get("resourceType") == "OperationOutcome":
                    raise FetchError("the FHIR server answered with an OperationOutcome")
                if bundle.get("resourceType") != "Bundle":
                    raise FetchError(f"the FHIR server answered with a {resource_kind(bundle)} where a searchset Bundle was expected")
                if not isinstance(bundle.get("entry", []), list) or not isinstance(bundle.get("link", []), list):
                    raise FetchError("the FHIR server answered with a Bundle whose entry or link is not an array")
            except FetchError as error:
                if not pages:
                    raise
                # What the earlier pages gave is kept; the key still reports that the search is incomplete.
                truncated = f"page {pages + 1} could not be read: {error}"
                next_url = None
                break
            pages += 1
            page_resources = bundle_resources(bundle)
            page_included = included_count(bundle)
            room = self.max_resources - len(resources)
            if len(page_resources) > room:
                resources.extend(page_resources[:room])
                matched += max(0, room - page_included)
                truncated = (
                    f"only {self.max_resources} resources read, {len(page_resources) - room} more on the last page "
                    f"and perhaps more after it (cap CDS_FETCH_MAX_RESOURCES={self.max_resources})"
                )
                break
            resources.extend(page_resources)
            matched += len(page_resources) - page_included
            try:
                next_url = self._next_link(call, bundle)
            except FetchError as error:
                truncated = str(error)
                break
        if truncated and isinstance(bundle.get("total"), int):
            unread = bundle["total"] - matched
            if unread > 0:
                truncated += f"; about {unread} resources not read"
        return KeyResult(resources=resources, error=truncated, source="fetched")

    def _next_link(self, call: _Call, bundle: dict) -> str | None:
        links = bundle.get("link")
        for link in links if isinstance(links, list) else []:
            if isinstance(link, dict) and link.get("relation") == "next" and isinstance(link.get("url"), str):
                url = urljoin(call.base + "/", link["url"])
                if outbound.origin_of(url) != call.origin:
                    raise FetchError("a next link points outside the fhirServer's origin; it was not followed")
                return url
        return None

    # ------------------------------------------------------------------ HTTP

    def _get_json(self, call: _Call, url: str, *, what: str) -> dict[str, Any]:
        scope = call.scope
        try:
            if call.cancelled.is_set():
                scope.abort()
            scope.check()
        except outbound.Refused as refused:
            raise FetchError(str(refused)) from None
        remaining = scope.remaining()
        timeout = (min(self.connect_timeout, remaining), min(self.read_timeout, remaining))
        # Prepared and sent straight through the adapter: Session.request would merge session settings, cookies
        # (refused anyway) and hooks on every request, ~0.2 ms of CPU each under the GIL, and the nine requests of a
        # call leave one after another (docs/performance.md). Redirects are not followed either way.
        prepared = requests.PreparedRequest()
        response = None
        try:
            prepared.prepare(method="GET", url=url, headers=call.headers)
            # The token goes to the fhirServer's origin only, as urllib3 reads the URL that is actually sent (urlsplit
            # and urllib3 disagree on e.g. a backslash before an @, and urllib3 is what connects).
            if outbound.origin_of(prepared.url) != call.origin or outbound.origin_of(url) != call.origin:
                raise FetchError("refused to fetch from outside the fhirServer's origin")
            with outbound.within(scope):  # left before the response is closed (its connection leaves the scope)
                response = self._adapter.send(prepared, stream=True, timeout=timeout, verify=call.verify,
                                              proxies=call.proxies)
                check_status(response.status_code, authenticated="Authorization" in call.headers, what=what)
                body = bytearray()
                for chunk in response.iter_content(_CHUNK):
                    body += chunk
                    if len(body) > MAX_RESPONSE_BYTES:
                        raise FetchError(f"the FHIR server's answer is larger than {MAX_RESPONSE_BYTES} bytes")
                    scope.take(len(chunk))
                    if call.cancelled.is_set():
                        raise FetchError(f"not obtained within the fetch deadline of {scope.seconds:g} s")
        except outbound.Refused as refused:
            raise FetchError(str(refused)) from None
        except requests.RequestException as error:
            raise FetchError(transport_reason(error)) from None
        except (requests.exceptions.InvalidURL, ValueError):
            raise FetchError("refused to fetch a malformed URL") from None
        finally:
            if response is not None:
                response.close()
        if call.cancelled.is_set():  # the call has answered: no parse after it
            raise FetchError(f"not obtained within the fetch deadline of {scope.seconds:g} s")
        try:
            parsed = parse_json(body)
        except (ValueError, RecursionError):
            raise FetchError("the FHIR server's answer is not valid JSON (empty, truncated or not JSON)") from None
        if not isinstance(parsed, dict) or not isinstance(parsed.get("resourceType"), str):
            raise FetchError("the FHIR server's answer is not a FHIR resource")
        return parsed


def _environment(base: str) -> tuple[dict[str, str], bool | str]:
    """What requests would read from the environment for fhirServer on every request: proxies and the CA bundle."""
    proxies = requests.utils.get_environ_proxies(base)
    verify: bool | str = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    return proxies, verify


