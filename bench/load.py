"""A bounded HTTP load generator: N keep-alive connections sending GETs continuously at a
rehearsal host while something else happens (a rolling deploy, a reload), recording every
response, so tests and benchmarks can say exactly which requests failed and when.

Pure standard library: an HTTP/1.1 client on ``asyncio.open_connection`` streams. It sends
``GET`` only (no body, no ``Accept-Encoding``) and reads ``Content-Length``, chunked and
read-until-close bodies; a ``Connection: close`` answer makes the worker reconnect for its next
request. Each of the ``connections`` workers loops: next path (round-robin over ``paths``, each
worker starting at a different offset so the mix is even), send, read the whole answer, record
one :class:`Record`, repeat.

Bounds: ``duration_s`` is required and at most :data:`MAX_DURATION_S`; ``max_requests`` optionally
caps the total. No request starts after the deadline; requests in flight at the deadline (or at
:meth:`LoadHandle.stop`) finish and are recorded, each bounded by ``timeout_s``, so a run lasts at
most ``duration_s + timeout_s`` (plus the connection ramp). Connections are opened gradually over
``ramp_s`` (default ``min(1 s, duration_s / 10)``), and the soft ``RLIMIT_NOFILE`` is raised to the
hard limit when ``connections + 100`` descriptors would not fit (ValueError when even the hard limit
is too low). After a failed connect a worker pauses ``connect_backoff_s`` so an unreachable target
does not turn into a hot loop of refused connections (and an unbounded list of records).

Stale keep-alive retry: when a request sent on a *reused* keep-alive connection fails with a
connection error or EOF *before any byte of the answer arrived*, it is resent once on a new
connection and the record is marked ``retried`` (not a failure). This is what Go's net/http (and
so k6), browsers and urllib3 do for idempotent requests: an nginx graceful reload (and any
keep-alive timeout) closes idle keep-alive connections, and a request the client sent at the
same moment races with that close. The race is inherent to HTTP keep-alive, not a server failure.
A connection already seen closed before sending is replaced silently. Errors on a fresh
connection, errors after part of the answer arrived, and a failing retry are failures.

Error kinds (``Record.error``): ``connect`` (refused/reset/unreachable while opening), ``reset``
(connection error mid-request), ``eof`` (connection closed mid-request), ``timeout`` (no complete
answer within ``timeout_s``, connect included), ``protocol`` (unparseable answer), ``other``
(anything unexpected; workers never raise). A status >= 500 is a failure of kind ``"503"`` etc.

Use :func:`run` (blocking) or :func:`running` (a background thread; the caller deploys meanwhile,
:meth:`LoadHandle.mark` names moments to split the summary into windows). Also a command:
``python -m bench.load http://10.99.0.2 --connections 200 --duration 30``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import resource
import signal
import ssl
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from lbstack.probe import percentile

MAX_DURATION_S = 7200.0  # bench.soak holds load for an hour (default); still bounded
DEFAULT_TIMEOUT_S = 10.0
DEFAULT_CONNECT_BACKOFF_S = 0.05
MAX_HEAD_BYTES = 64 * 1024  # status line + headers (+ chunk trailers) of one answer
READ_CHUNK = 64 * 1024
USER_AGENT = "lbstack-load"
INSTANCE_HEADER = "x-lbstack-instance"
RELEASE_HEADER = "x-lbstack-release"
RETRY_AFTER_HEADER = "retry-after"
_INTERN_MAX = 10_000  # distinct header values shared between records (memory)
_NO_BODY_STATUS = {204, 304}


class Record:
    """One request: when it started (seconds since the load started), how long it took, and
    its answer (``status``) or failure (``error``, status None)."""

    FIELDS = ("start", "latency", "status", "error", "instance", "release", "path", "retry_after",
              "retried")
    __slots__ = ("error", "instance", "latency", "path", "release", "retried", "retry_after",
                 "start", "status")

    def __init__(self, start: float, latency: float, status: int | None, error: str, instance: str,
                 release: str, path: str, retry_after: str, retried: bool) -> None:
        self.start = start
        self.latency = latency
        self.status = status
        self.error = error
        self.instance = instance
        self.release = release
        self.path = path
        self.retry_after = retry_after
        self.retried = retried

    @property
    def failed(self) -> bool:
        return self.status is None or self.status >= 500

    @property
    def kind(self) -> str:
        """``"200"``, ``"503"``, or the error kind."""
        return str(self.status) if self.status is not None else self.error

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.FIELDS}

    def __repr__(self) -> str:
        return f"Record({self.as_dict()!r})"


def _latency_ms(latencies: list[float]) -> dict[str, float | None]:
    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 2)

    return {"p50": ms(percentile(latencies, 50)), "p95": ms(percentile(latencies, 95)),
            "p99": ms(percentile(latencies, 99)), "max": ms(max(latencies) if latencies else None)}


class LoadResult:
    """Every record of one load run, the named marks, and summaries over time windows."""

    def __init__(self, target: str, connections: int, paths: Sequence[str]) -> None:
        self.target = target
        self.connections = connections  # concurrent connections asked for
        self.paths = list(paths)
        self.records: list[Record] = []
        self.marks: dict[str, float] = {}
        self.duration_s = 0.0  # actual: start until the last worker finished
        # CLOCK_MONOTONIC when it started: containers share this machine's kernel and clock, so a
        # load run inside a rehearsal host lines up with events timed here
        self.started_monotonic = 0.0
        self.connections_opened = 0  # TCP connections opened (keep-alive reuse keeps it low)

    @property
    def retried(self) -> int:
        return sum(1 for r in self.records if r.retried)

    def window(self, start: float | None = None, end: float | None = None) -> list[Record]:
        """Records whose ``start`` is in ``[start, end)`` (seconds since the load started)."""
        lo = -math.inf if start is None else start
        hi = math.inf if end is None else end
        return [r for r in self.records if lo <= r.start < hi]

    def summary(self, start: float | None = None, end: float | None = None) -> dict[str, Any]:
        """Counts, failures by kind, rate and latency of the records started in ``[start, end)``."""
        records = self.window(start, end)
        seconds = max(0.0, min(self.duration_s, math.inf if end is None else end)
                      - max(0.0, 0.0 if start is None else start))
        latencies = [r.latency for r in records if r.status is not None]
        return {
            "requests": len(records),
            "ok": sum(1 for r in records if r.status is not None and 200 <= r.status < 400),
            "failed": sum(1 for r in records if r.failed),
            "failed_by_kind": dict(Counter(r.kind for r in records if r.failed)),
            "status": dict(Counter(str(r.status) for r in records if r.status is not None)),
            "retried": sum(1 for r in records if r.retried),
            "rps": round(len(records) / seconds, 1) if seconds > 0 else 0.0,
            "latency_ms": _latency_ms(latencies),
            "instances": dict(Counter(r.instance for r in records if r.instance)),
            "releases": dict(Counter(r.release for r in records if r.release)),
            "seconds": round(seconds, 3),
        }

    def timeline(self, bucket_s: float = 1.0) -> list[dict[str, Any]]:
        """Per ``bucket_s`` bucket of start times: ``{t, requests, failed, p95_ms}``."""
        if bucket_s <= 0:
            raise ValueError("bucket_s must be > 0")
        last = max([self.duration_s] + [r.start for r in self.records])
        count = max(1, int(last // bucket_s) + 1)
        buckets: list[list[Record]] = [[] for _ in range(count)]
        for r in self.records:
            buckets[min(count - 1, int(r.start // bucket_s))].append(r)
        rows = []
        for i, records in enumerate(buckets):
            p95 = percentile([r.latency for r in records if r.status is not None], 95)
            rows.append({"t": round(i * bucket_s, 3), "requests": len(records),
                         "failed": sum(1 for r in records if r.failed),
                         "p95_ms": None if p95 is None else round(p95 * 1000, 2)})
        return rows

    def as_dict(self, include_records: bool = False) -> dict[str, Any]:
        """JSON-able: settings, marks and the whole-run summary (and every record if asked)."""
        out: dict[str, Any] = {
            "target": self.target, "connections": self.connections, "paths": self.paths,
            "duration_s": round(self.duration_s, 3), "connections_opened": self.connections_opened,
            "started_monotonic": round(self.started_monotonic, 3),
            "marks": {k: round(v, 3) for k, v in self.marks.items()}, "summary": self.summary(),
        }
        if include_records:
            out["records"] = [r.as_dict() for r in self.records]
        return out


class _Failure(Exception):
    """A request failed with ``kind``; ``before_answer``: no byte of the answer had arrived."""

    def __init__(self, kind: str, before_answer: bool) -> None:
        super().__init__(kind)
        self.kind = kind
        self.before_answer = before_answer


class _Answer:
    __slots__ = ("headers", "keep_alive", "status")

    def __init__(self, status: int, headers: dict[str, str], keep_alive: bool) -> None:
        self.status = status
        self.headers = headers
        self.keep_alive = keep_alive


class _Connection:
    """One TCP connection and how many answers it has carried."""

    __slots__ = ("reader", "used", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.used = 0

    def seen_closed(self) -> bool:
        return self.reader.at_eof() or self.writer.is_closing()

    def close(self, abort: bool = False) -> None:
        transport = self.writer.transport
        if abort:
            transport.abort()
        else:
            transport.close()


def _complete_line(line: bytes, budget: list[int]) -> bytes:
    if not line.endswith(b"\n"):
        raise asyncio.IncompleteReadError(line, None)
    budget[0] -= len(line)
    if budget[0] < 0:
        raise ValueError("answer head too large")
    return line.rstrip(b"\r\n")


async def _read_line(reader: asyncio.StreamReader, budget: list[int]) -> bytes:
    """One CRLF line (without it), counted against the head budget."""
    return _complete_line(await reader.readline(), budget)  # ValueError beyond the stream limit


def _parse_status_line(line: bytes) -> tuple[bytes, int]:
    parts = line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or len(parts[1]) != 3:
        raise ValueError(f"bad status line {line[:80]!r}")
    return parts[0], int(parts[1])


async def _read_headers(reader: asyncio.StreamReader, budget: list[int]) -> dict[str, str]:
    headers: dict[str, str] = {}
    while True:
        line = await _read_line(reader, budget)
        if not line:
            return headers
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip():
            raise ValueError(f"bad header line {line[:80]!r}")
        key = name.decode("latin-1").lower()
        text = value.strip().decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text


async def _discard(reader: asyncio.StreamReader, size: int) -> None:
    while size > 0:
        chunk = min(size, READ_CHUNK)
        await reader.readexactly(chunk)
        size -= chunk


async def _read_chunked(reader: asyncio.StreamReader, budget: list[int]) -> None:
    while True:
        size_line = await _read_line(reader, budget)
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size < 0:
            raise ValueError("negative chunk size")
        if size == 0:
            while await _read_line(reader, budget):  # trailers, up to the empty line
                pass
            return
        await _discard(reader, size)
        if await reader.readexactly(2) != b"\r\n":
            raise ValueError("chunk not followed by CRLF")


async def _read_until_close(reader: asyncio.StreamReader) -> None:
    while await reader.read(READ_CHUNK):
        pass


async def _read_answer(reader: asyncio.StreamReader, first: bytes) -> _Answer:
    """Status line (``first``, already read), headers and body of one answer (1xx interim
    answers skipped)."""
    budget = [MAX_HEAD_BYTES]
    line = _complete_line(first, budget)
    while True:
        version, status = _parse_status_line(line)
        headers = await _read_headers(reader, budget)
        if not (100 <= status < 200) or status == 101:
            break
        line = await _read_line(reader, budget)
    tokens = {t.strip() for t in headers.get("connection", "").lower().split(",")}
    keep_alive = "keep-alive" in tokens if version == b"HTTP/1.0" else "close" not in tokens
    if status in _NO_BODY_STATUS or 100 <= status < 200:
        pass
    elif "chunked" in headers.get("transfer-encoding", "").lower():
        await _read_chunked(reader, budget)
    elif "content-length" in headers:
        length = int(headers["content-length"].split(",")[0].strip())
        if length < 0:
            raise ValueError("negative Content-Length")
        await _discard(reader, length)
    else:
        await _read_until_close(reader)
        keep_alive = False
    return _Answer(status, headers, keep_alive)


async def _exchange(conn: _Connection, request: bytes) -> _Answer:
    """Send ``request`` on ``conn`` and read the answer; failures become :class:`_Failure`."""
    reader = conn.reader
    try:
        conn.writer.write(request)
        await conn.writer.drain()
        first = await reader.readline()
    except ValueError as exc:  # first line beyond the stream limit
        raise _Failure("protocol", False) from exc
    except OSError as exc:
        raise _Failure("reset", True) from exc
    if not first:
        raise _Failure("eof", True)
    try:
        return await _read_answer(reader, first)
    except asyncio.IncompleteReadError as exc:
        raise _Failure("eof", False) from exc
    except OSError as exc:
        raise _Failure("reset", False) from exc
    except (ValueError, asyncio.LimitOverrunError) as exc:
        raise _Failure("protocol", False) from exc


class _Target:
    """Where the load goes, parsed from ``http(s)://host[:port][/path]``."""

    def __init__(self, url: str, host_header: str | None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"only http:// and https:// targets are supported, not {url!r}")
        self.tls = parts.scheme == "https"
        if not parts.hostname:
            raise ValueError(f"no host in target {url!r}")
        self.url = url
        self.host = parts.hostname
        self.port = parts.port or (443 if self.tls else 80)
        self.host_header = host_header or parts.netloc.rpartition("@")[2]
        self.default_path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def _check_header_text(text: str, what: str) -> None:
    if any(c in text for c in "\r\n\0"):
        raise ValueError(f"{what} must not contain CR, LF or NUL: {text!r}")


def _request_bytes(path: str, host_header: str, headers: dict[str, str]) -> bytes:
    lines = [f"GET {path} HTTP/1.1", f"Host: {host_header}", f"User-Agent: {USER_AGENT}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def ensure_open_files(connections: int) -> int:
    """Make room for ``connections + 100`` descriptors (soft RLIMIT_NOFILE raised to the hard
    limit if needed); return the soft limit. ValueError when the hard limit is too low."""
    need = connections + 100
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= need:
        return soft
    if hard != resource.RLIM_INFINITY and hard < need:
        raise ValueError(f"{connections} connections need {need} open files but RLIMIT_NOFILE "
                         f"(ulimit -n) is {soft} with a hard limit of {hard}")
    new_soft = hard if hard != resource.RLIM_INFINITY else need
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (new_soft, hard))
    except (ValueError, OSError) as exc:
        raise ValueError(f"could not raise RLIMIT_NOFILE from {soft} to {new_soft} for "
                         f"{connections} connections: {exc}") from exc
    return new_soft


class LoadGenerator:
    """One bounded load run; use :func:`run` or :func:`running` rather than this directly."""

    def __init__(self, target: str, *, duration_s: float, connections: int = 10,
                 paths: Sequence[str] | None = None, max_requests: int | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S, host_header: str | None = None,
                 headers: dict[str, str] | None = None, ramp_s: float | None = None,
                 connect_backoff_s: float = DEFAULT_CONNECT_BACKOFF_S, cafile: str | None = None) -> None:
        self.target = _Target(target, host_header)
        # https: the certificate is verified (against ``cafile``, else the system's CAs) for the
        # name in the Host header, which is also the SNI name
        self.tls = ssl.create_default_context(cafile=cafile) if self.target.tls else None
        if not 0 < duration_s <= MAX_DURATION_S:
            raise ValueError(f"duration_s must be in (0, {MAX_DURATION_S:g}], not {duration_s}")
        if connections < 1:
            raise ValueError(f"connections must be >= 1, not {connections}")
        if max_requests is not None and max_requests < 1:
            raise ValueError(f"max_requests must be >= 1, not {max_requests}")
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, not {timeout_s}")
        self.paths = list(paths) if paths else [self.target.default_path]
        for path in self.paths:
            if not path.startswith("/") or " " in path:
                raise ValueError(f"paths must start with / and contain no spaces: {path!r}")
            _check_header_text(path, "path")
        extra = dict(headers or {})
        for name, value in extra.items():
            _check_header_text(name + value, "header")
            if not name or ":" in name:
                raise ValueError(f"bad header name {name!r}")
        _check_header_text(self.target.host_header, "host_header")
        self.duration_s = float(duration_s)
        self.connections = connections
        self.max_requests = max_requests
        self.timeout_s = float(timeout_s)
        self.ramp_s = min(1.0, duration_s / 10) if ramp_s is None else max(0.0, ramp_s)
        self.connect_backoff_s = connect_backoff_s
        self.requests = {p: _request_bytes(p, self.target.host_header, extra) for p in self.paths}
        self.result = LoadResult(target, connections, self.paths)
        self.t0 = 0.0
        self._deadline = 0.0
        self._issued = 0
        self._stopping = False
        self._strings: dict[str, str] = {}

    # -- control (stop() may be called from any thread) --

    def stop(self) -> None:
        """No new requests; those in flight finish (bounded by the timeout) and are recorded."""
        self._stopping = True

    def elapsed(self) -> float:
        return time.monotonic() - self.t0 if self.t0 else 0.0

    # -- the run --

    async def run_async(self, started: threading.Event | None = None) -> LoadResult:
        ensure_open_files(self.connections)
        self.t0 = time.monotonic()
        self.result.started_monotonic = self.t0
        self._deadline = self.t0 + self.duration_s
        if started is not None:
            started.set()
        tasks = [asyncio.create_task(self._worker(i)) for i in range(self.connections)]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await asyncio.sleep(0)  # let transports run their close callbacks
            self.result.duration_s = time.monotonic() - self.t0
        return self.result

    def _may_start(self) -> bool:
        if self._stopping or time.monotonic() >= self._deadline:
            return False
        if self.max_requests is not None:
            if self._issued >= self.max_requests:
                return False
            self._issued += 1
        return True

    async def _worker(self, index: int) -> None:
        if self.ramp_s > 0:
            await asyncio.sleep(self.ramp_s * index / self.connections)
        conn: _Connection | None = None
        position = index % len(self.paths)
        try:
            while self._may_start():
                path = self.paths[position]
                position = (position + 1) % len(self.paths)
                conn, record = await self._one(conn, path)
                self.result.records.append(record)
                if record.error == "connect" and self.connect_backoff_s > 0:
                    await asyncio.sleep(self.connect_backoff_s)
        finally:
            if conn is not None:
                conn.close()

    async def _connect(self) -> _Connection:
        try:
            reader, writer = await asyncio.open_connection(
                self.target.host, self.target.port, limit=MAX_HEAD_BYTES, ssl=self.tls,
                server_hostname=self.target.host_header.rsplit(":", 1)[0] if self.tls else None)
        except OSError as exc:
            raise _Failure("connect", True) from exc
        self.result.connections_opened += 1
        return _Connection(reader, writer)

    async def _one(self, conn: _Connection | None, path: str) -> tuple[_Connection | None, Record]:
        """One request, with the stale keep-alive retry; returns the connection to reuse."""
        started = time.monotonic()
        retried = False
        if conn is not None and conn.seen_closed():
            conn.close()
            conn = None
        try:
            async with asyncio.timeout(self.timeout_s):
                while True:
                    reused = conn is not None
                    try:
                        if conn is None:
                            conn = await self._connect()
                        answer = await _exchange(conn, self.requests[path])
                        break
                    except _Failure as failure:
                        if conn is not None:
                            conn.close(abort=True)
                            conn = None
                        if reused and failure.before_answer and not retried:
                            retried = True
                            continue
                        raise
        except _Failure as failure:
            return None, self._record(started, None, failure.kind, path, retried)
        except asyncio.CancelledError:  # aborted: close what this request opened, record nothing
            if conn is not None:
                conn.close(abort=True)
            raise
        except TimeoutError:
            kind = "timeout"
        except Exception:  # noqa: BLE001 - a worker never raises; the record says "other"
            kind = "other"
        else:
            conn.used += 1  # type: ignore[union-attr]
            if not answer.keep_alive:
                conn.close()  # type: ignore[union-attr]
                conn = None
            return conn, self._record(started, answer.status, "", path, retried, answer.headers)
        if conn is not None:
            conn.close(abort=True)
        return None, self._record(started, None, kind, path, retried)

    def _intern(self, value: str) -> str:
        if not value:
            return ""
        if len(self._strings) < _INTERN_MAX:
            return self._strings.setdefault(value, value)
        return self._strings.get(value, value)

    def _record(self, started: float, status: int | None, error: str, path: str, retried: bool,
                headers: dict[str, str] | None = None) -> Record:
        now = time.monotonic()
        headers = headers or {}
        return Record(started - self.t0, now - started, status, error,
                      self._intern(headers.get(INSTANCE_HEADER, "")),
                      self._intern(headers.get(RELEASE_HEADER, "")), path,
                      self._intern(headers.get(RETRY_AFTER_HEADER, "")), retried)


def run(target: str, *, duration_s: float, connections: int = 10,
        paths: Sequence[str] | None = None, max_requests: int | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S, host_header: str | None = None,
        headers: dict[str, str] | None = None, ramp_s: float | None = None,
        connect_backoff_s: float = DEFAULT_CONNECT_BACKOFF_S) -> LoadResult:
    """Send load to ``target`` (``http://host[:port]``) for ``duration_s`` seconds (or until
    ``max_requests``) over ``connections`` keep-alive connections; blocks, returns every record."""
    generator = LoadGenerator(target, duration_s=duration_s, connections=connections, paths=paths,
                              max_requests=max_requests, timeout_s=timeout_s,
                              host_header=host_header, headers=headers, ramp_s=ramp_s,
                              connect_backoff_s=connect_backoff_s)
    return asyncio.run(generator.run_async())


class LoadHandle:
    """A load run in a background thread (see :func:`running`)."""

    def __init__(self, generator: LoadGenerator) -> None:
        self._generator = generator
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._aborted = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[LoadResult] | None = None
        self._thread = threading.Thread(target=self._main, name="lbstack-load", daemon=True)

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # noqa: BLE001 - handed to the caller by result()
            if not (self._aborted and isinstance(exc, asyncio.CancelledError)):
                self._error = exc
        finally:
            self._started.set()

    async def _run(self) -> LoadResult:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()  # type: ignore[assignment]
        return await self._generator.run_async(self._started)

    def _start(self) -> None:
        self._thread.start()
        self._started.wait()
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        """End the load early: no new requests; those in flight finish and are recorded."""
        self._generator.stop()

    def abort(self) -> None:
        """End the load now: in-flight requests are cancelled (not recorded), sockets closed."""
        self._aborted = True
        self._generator.stop()
        if self._loop is not None and self._task is not None and not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(self._task.cancel)
            except RuntimeError:  # the loop closed meanwhile
                pass

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def elapsed(self) -> float:
        """Seconds since the load started."""
        return self._generator.elapsed()

    def mark(self, label: str) -> float:
        """Record ``label`` at the current time (seconds since start) in ``result.marks``."""
        at = self.elapsed()
        self._generator.result.marks[label] = at
        return at

    @property
    def requests_so_far(self) -> int:
        return len(self._generator.result.records)

    def result(self, timeout: float | None = None) -> LoadResult:
        """Wait for the run to end (TimeoutError after ``timeout`` seconds) and return it."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"load still running after {timeout} s")
        if self._error is not None:
            raise self._error
        return self._generator.result


@contextmanager
def running(target: str, *, duration_s: float, connections: int = 10,
            paths: Sequence[str] | None = None, max_requests: int | None = None,
            timeout_s: float = DEFAULT_TIMEOUT_S, host_header: str | None = None,
            headers: dict[str, str] | None = None, ramp_s: float | None = None,
            connect_backoff_s: float = DEFAULT_CONNECT_BACKOFF_S) -> Iterator[LoadHandle]:
    """Like :func:`run`, in a background thread with its own event loop; returns once the load
    has started. Leaving the block stops the load (and waits for in-flight requests); an
    exception leaving the block aborts it instead."""
    generator = LoadGenerator(target, duration_s=duration_s, connections=connections, paths=paths,
                              max_requests=max_requests, timeout_s=timeout_s,
                              host_header=host_header, headers=headers, ramp_s=ramp_s,
                              connect_backoff_s=connect_backoff_s)
    handle = LoadHandle(generator)
    handle._start()
    try:
        yield handle
    except BaseException:
        handle.abort()
        raise
    finally:
        handle.stop()
        handle._thread.join()


# -- command line --

def _counts(counter: dict[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(counter.items())) or "-"


def _format_summary(result: LoadResult) -> str:
    s = result.summary()
    lat = s["latency_ms"]
    return "\n".join([
        (f"{result.target}: {result.connections} connections, {s['seconds']:.1f} s, "
         f"{s['requests']} requests ({s['rps']}/s), {result.connections_opened} connections opened"),
        (f"ok {s['ok']}, failed {s['failed']} ({_counts(s['failed_by_kind'])}), "
         f"retried {s['retried']}"),
        f"status: {_counts(s['status'])}",
        f"latency ms: p50 {lat['p50']}  p95 {lat['p95']}  p99 {lat['p99']}  max {lat['max']}",
        f"instances: {_counts(s['instances'])}",
        f"releases: {_counts(s['releases'])}",
    ])


async def _run_with_sigint(generator: LoadGenerator) -> LoadResult:
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGINT, generator.stop)  # Ctrl-C: stop, keep the summary
    except (NotImplementedError, RuntimeError):
        pass
    return await generator.run_async()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=(
        "Send bounded HTTP GET load over keep-alive connections and summarize every answer. "
        "Exit 0 without failures (5xx or connection errors), 3 otherwise."))
    parser.add_argument("url", help="http://host[:port] or https://host[:port] (certificate verified)")
    parser.add_argument("--connections", "-c", type=int, default=10)
    parser.add_argument("--duration", "-d", type=float, required=True,
                        help=f"seconds, at most {MAX_DURATION_S:g}")
    parser.add_argument("--path", action="append", dest="paths",
                        help="path to request (repeat for a round-robin mix; default /)")
    parser.add_argument("--max-requests", type=int)
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S)
    parser.add_argument("--host-header")
    parser.add_argument("--header", action="append", default=[], help="'Name: value'")
    parser.add_argument("--cafile", help="https: CA certificates to verify the server's chain with")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--records", action="store_true", help="with --json: every request's record too")
    args = parser.parse_args(argv)
    headers = {}
    for item in args.header:
        name, sep, value = item.partition(":")
        if not sep:
            parser.error(f"--header needs 'Name: value', not {item!r}")
        headers[name.strip()] = value.strip()
    try:
        generator = LoadGenerator(args.url, duration_s=args.duration, connections=args.connections,
                                  paths=args.paths, max_requests=args.max_requests,
                                  timeout_s=args.timeout, host_header=args.host_header,
                                  headers=headers, cafile=args.cafile)
        result = asyncio.run(_run_with_sigint(generator))
    except ValueError as exc:
        parser.error(str(exc))
    if args.json:
        print(json.dumps(result.as_dict(include_records=args.records), indent=None if args.records else 2))
    else:
        print(_format_summary(result))
    return 0 if result.summary()["failed"] == 0 else 3


if __name__ == "__main__":
    sys.exit(main())
