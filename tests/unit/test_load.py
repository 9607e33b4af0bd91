"""The load generator against a real local HTTP server (asyncio, 127.0.0.1, a background thread)
whose behaviour is chosen by the request path: bodies, keep-alive, closes, stale connections,
timeouts, bounds, the background-thread mode and the command's exit code."""

from __future__ import annotations

import asyncio
import json
import resource
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from lbstack import REPO_ROOT
from bench.load import LoadGenerator, ensure_open_files, run, running

BIG = 200_000


def _answer(status: str, body: bytes = b"", extra: str = "", length: bool = True) -> bytes:
    head = f"HTTP/1.1 {status}\r\n{extra}"
    if length:
        head += f"Content-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


CHUNKED = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Lbstack-Instance: b\r\n"
           b"x-lbstack-release: r2\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n")


class LocalServer:
    """HTTP/1.1 keep-alive server; counts connections and requests, records request heads."""

    def __init__(self, tls=None) -> None:
        self.connections = 0
        self.requests = 0
        self.heads: list[bytes] = []
        self.stale_left = 0  # how many second-or-later requests on a connection to drop unanswered
        self._writers: set[asyncio.StreamWriter] = set()
        self._released = asyncio.Event()  # ends the /hang handlers at shutdown
        self.loop = asyncio.new_event_loop()
        self.server = self.loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=1024, ssl=tls))
        self.port = self.server.sockets[0].getsockname()[1]
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        served = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                served += 1
                self.requests += 1
                self.heads.append(head)
                path = head.split(b" ", 2)[1].decode()
                if not await self._respond(path, served, writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _respond(self, path: str, served: int, writer: asyncio.StreamWriter) -> bool:
        """Answer one request; False: close the connection."""
        if path == "/cl":
            writer.write(_answer("200 OK", b"hello", "X-Lbstack-Instance: a\r\nX-Lbstack-Release: r1\r\n"))
        elif path == "/chunked":
            writer.write(CHUNKED)
        elif path == "/503":
            writer.write(_answer("503 Service Unavailable", b"busy", "Retry-After: 7\r\n"))
        elif path in ("/500", "/404"):
            writer.write(_answer(f"{path[1:]} X", b"no"))
        elif path == "/interim":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n" + _answer("200 OK", b"ok"))
        elif path == "/big":
            writer.write(_answer("200 OK", b"x" * BIG))
        elif path == "/close":
            writer.write(_answer("200 OK", b"bye", "Connection: close\r\n"))
            await writer.drain()
            return False
        elif path == "/eof":  # no length: the body ends when the connection does
            writer.write(_answer("200 OK", b"until close", "Connection: close\r\n", length=False))
            await writer.drain()
            return False
        elif path == "/hang":
            await self._released.wait()
            return False
        elif path == "/drop":
            return False
        elif path == "/then-close":  # keep-alive answer, then the idle connection is closed
            writer.write(_answer("200 OK", b"ok"))
            await writer.drain()
            return False
        elif path == "/garbage":
            writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        elif path == "/stale":
            if served >= 2 and self.stale_left > 0:
                self.stale_left -= 1
                return False  # the idle keep-alive close racing with the client's request
            writer.write(_answer("200 OK", b"fresh"))
        else:
            writer.write(_answer("404 Not Found", b""))
        await writer.drain()
        return True

    def close(self) -> None:
        async def shutdown() -> None:
            self.server.close()
            self._released.set()
            for writer in list(self._writers):
                writer.transport.abort()
            await asyncio.sleep(0.01)

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def server() -> Iterator[LocalServer]:
    srv = LocalServer()
    yield srv
    srv.close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_bodies_headers_and_status_counts(server: LocalServer) -> None:
    result = run(server.url, duration_s=5, connections=1, max_requests=40, ramp_s=0,
                 paths=["/cl", "/chunked", "/503", "/404"], host_header="app.example",
                 headers={"X-Test": "1"})
    s = result.summary()
    assert s["requests"] == 40
    assert s["status"] == {"200": 20, "503": 10, "404": 10}
    assert (s["ok"], s["failed"], s["failed_by_kind"], s["retried"]) == (20, 10, {"503": 10}, 0)
    assert s["instances"] == {"a": 10, "b": 10}
    assert s["releases"] == {"r1": 10, "r2": 10}
    assert {r.retry_after for r in result.records if r.status == 503} == {"7"}
    assert {r.retry_after for r in result.records if r.status != 503} == {""}
    assert Counter(r.path for r in result.records) == {p: 10 for p in ["/cl", "/chunked", "/503", "/404"]}
    assert all(r.error == "" and r.latency > 0 for r in result.records)
    assert server.connections == 1 == result.connections_opened  # chunked and 503 kept alive too
    assert server.heads[0] == (b"GET /cl HTTP/1.1\r\nHost: app.example\r\nUser-Agent: lbstack-load\r\n"
                               b"X-Test: 1\r\n\r\n")
    assert s["latency_ms"]["p50"] <= s["latency_ms"]["p95"] <= s["latency_ms"]["p99"] <= s["latency_ms"]["max"]


def test_host_header_defaults_to_the_url_host_and_port(server: LocalServer) -> None:
    run(server.url, duration_s=5, max_requests=1, paths=["/cl"])
    assert server.heads == [f"GET /cl HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                            f"User-Agent: lbstack-load\r\n\r\n".encode()]
    assert b"accept-encoding" not in server.heads[0].lower()


def test_keep_alive_connections_are_reused(server: LocalServer) -> None:
    result = run(server.url, duration_s=5, connections=4, max_requests=400, paths=["/cl", "/chunked"])
    assert len(result.records) == 400 == server.requests
    assert result.summary()["failed"] == 0
    assert 1 <= server.connections <= 4
    assert result.connections_opened == server.connections


def test_connection_close_and_body_until_close_reconnect_without_failures(server: LocalServer) -> None:
    result = run(server.url, duration_s=5, connections=2, max_requests=30, ramp_s=0,
                 paths=["/close", "/eof", "/big", "/interim"])
    s = result.summary()
    assert (s["requests"], s["failed"], s["retried"]) == (30, 0, 0)
    assert s["status"] == {"200": 30}
    closing = sum(1 for r in result.records if r.path in ("/close", "/eof"))
    assert server.connections >= closing  # a new connection after every closing answer


def test_stale_keep_alive_connection_is_retried_once_not_failed(server: LocalServer) -> None:
    server.stale_left = 1
    result = run(server.url, duration_s=5, connections=1, max_requests=5, paths=["/stale"])
    s = result.summary()
    assert (s["requests"], s["failed"], s["retried"], s["status"]) == (5, 0, 1, {"200": 5})
    (retried,) = [r for r in result.records if r.retried]
    assert retried.status == 200 and retried.error == ""
    assert server.connections == 2 and server.requests == 6  # the dropped send, then its resend


def test_keep_alive_connections_closed_after_the_answer_never_fail(server: LocalServer) -> None:
    result = run(server.url, duration_s=5, connections=3, max_requests=60, paths=["/then-close"])
    s = result.summary()
    assert (s["requests"], s["failed"], s["status"]) == (60, 0, {"200": 60})
    # each close is either seen before the next send (silent reconnect) or races it (resent on a
    # new connection, counted in retried); the server never sees a request on a closed connection
    assert server.connections == 60 == server.requests


def test_drop_on_a_fresh_connection_is_a_failure(server: LocalServer) -> None:
    result = run(server.url, duration_s=5, connections=1, max_requests=3, paths=["/drop"])
    s = result.summary()
    assert (s["requests"], s["failed"], s["retried"], s["ok"]) == (3, 3, 0, 0)
    assert set(s["failed_by_kind"]) <= {"eof", "reset", "connect"}
    assert all(r.status is None for r in result.records)


def test_refused_connection_is_kind_connect() -> None:
    result = run(f"http://127.0.0.1:{_closed_port()}", duration_s=5, max_requests=3,
                 connect_backoff_s=0)
    assert result.summary()["failed_by_kind"] == {"connect": 3}


def test_unanswered_request_times_out(server: LocalServer) -> None:
    started = time.monotonic()
    result = run(server.url, duration_s=5, connections=2, max_requests=2, timeout_s=0.2,
                 ramp_s=0, paths=["/hang"])
    assert time.monotonic() - started < 1.5
    assert result.summary()["failed_by_kind"] == {"timeout": 2}
    assert all(0.19 <= r.latency < 1.0 for r in result.records)


def test_unparseable_answer_is_kind_protocol(server: LocalServer) -> None:
    result = run(server.url, duration_s=5, max_requests=2, paths=["/garbage"])
    assert result.summary()["failed_by_kind"] == {"protocol": 2}


def test_duration_bounds_the_run_and_timeline_adds_up(server: LocalServer) -> None:
    started = time.monotonic()
    result = run(server.url, duration_s=1, connections=5, paths=["/cl", "/chunked"], timeout_s=2)
    # the documented bound (duration + one request timeout), not a timing: a busy machine is slow
    assert time.monotonic() - started < 1 + 2 + 1
    assert 1.0 <= result.duration_s < 1 + 2 + 1
    assert len(result.records) > 20 and all(r.start < 1.0 for r in result.records)
    timeline = result.timeline(0.25)
    assert len(timeline) >= 4 and [b["t"] for b in timeline[:4]] == [0, 0.25, 0.5, 0.75]
    assert sum(b["requests"] for b in timeline) == len(result.records)
    assert sum(b["failed"] for b in timeline) == result.summary()["failed"] == 0
    assert all(b["p95_ms"] is None or b["p95_ms"] > 0 for b in timeline)
    data = json.loads(json.dumps(result.as_dict(include_records=True)))
    assert data["summary"]["requests"] == len(data["records"]) == len(result.records)


def test_max_requests_gives_exactly_that_many_records(server: LocalServer) -> None:
    result = run(server.url, duration_s=10, connections=8, max_requests=50, paths=["/cl"])
    assert len(result.records) == 50 == server.requests


def test_https_verifies_the_chain_for_the_host_header_name(tmp_path) -> None:
    """https://: the server's certificate is checked against --cafile for the Host header's name
    (also the SNI name); a name it does not carry fails every request at connect."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=site.test",
                    "-addext", "subjectAltName=DNS:site.test", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    srv = LocalServer(tls=context)
    try:
        ok = LoadGenerator(srv.url, duration_s=5, connections=2, max_requests=20, paths=["/cl"],
                           host_header=f"site.test:{srv.port}", cafile=str(cert), ramp_s=0)
        result = asyncio.run(ok.run_async())
        assert result.summary()["ok"] == 20 and srv.requests == 20 and 1 <= srv.connections <= 2
        assert all(f"Host: site.test:{srv.port}".encode() in head for head in srv.heads)
        wrong = LoadGenerator(srv.url, duration_s=5, connections=1, max_requests=3, paths=["/cl"],
                              host_header="other.test", cafile=str(cert))
        summary = asyncio.run(wrong.run_async()).summary()
        assert summary["ok"] == 0 and summary["failed_by_kind"] == {"connect": 3}, summary
    finally:
        srv.close()


@pytest.mark.parametrize("kwargs", [
    {"target": "http://127.0.0.1", "duration_s": 7201},
    {"target": "http://127.0.0.1", "duration_s": 0},
    {"target": "ftp://127.0.0.1", "duration_s": 1},
    {"target": "http://127.0.0.1", "duration_s": 1, "connections": 0},
    {"target": "http://127.0.0.1", "duration_s": 1, "paths": ["no-slash"]},
    {"target": "http://127.0.0.1", "duration_s": 1, "headers": {"X": "a\r\nEvil: 1"}},
])
def test_bad_arguments_are_rejected(kwargs: dict) -> None:
    target = kwargs.pop("target")
    with pytest.raises(ValueError):
        run(target, **kwargs)
    with pytest.raises(ValueError), running(target, **kwargs):
        pass


def test_running_in_the_background_with_marks_and_windows(server: LocalServer) -> None:
    started = time.monotonic()
    with running(server.url, duration_s=30, connections=4, paths=["/cl"]) as handle:
        time.sleep(0.3)
        at = handle.mark("deploy")
        time.sleep(0.3)
        assert 0.55 < handle.elapsed() < 1.5
        handle.stop()
        result = handle.result(timeout=5)
    assert time.monotonic() - started < 2.0
    assert result.marks == {"deploy": at} and 0.25 < at < 0.6
    before, during = result.summary(end=at), result.summary(start=at)
    assert before["requests"] > 0 and during["requests"] > 0
    assert before["requests"] + during["requests"] == len(result.records)
    assert before["seconds"] == pytest.approx(at, abs=0.01)
    assert before["failed"] == during["failed"] == 0


def test_leaving_the_block_stops_the_load(server: LocalServer) -> None:
    started = time.monotonic()
    with running(server.url, duration_s=30, connections=2, paths=["/cl"]) as handle:
        time.sleep(0.1)
    assert handle.done and time.monotonic() - started < 1.5
    assert handle.result().summary()["failed"] == 0


def test_an_exception_in_the_block_aborts_the_load(server: LocalServer) -> None:
    started = time.monotonic()
    with (pytest.raises(RuntimeError, match="deploy failed"),
          running(server.url, duration_s=30, connections=2, timeout_s=20, paths=["/hang"]) as handle):
        time.sleep(0.1)
        raise RuntimeError("deploy failed")
    assert handle.done and time.monotonic() - started < 1.5  # the hanging requests were cancelled
    assert handle.result().records == []  # cancelled requests are not recorded


def test_open_file_limit_is_raised_or_named() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard < 400:
        pytest.skip(f"hard RLIMIT_NOFILE is {hard}")
    with pytest.raises(ValueError, match="RLIMIT_NOFILE"):
        ensure_open_files(hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    try:
        assert ensure_open_files(300) == hard
        assert resource.getrlimit(resource.RLIMIT_NOFILE) == (hard, hard)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench.load", *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=30, check=False)


def test_cli_exit_code_and_json(server: LocalServer) -> None:
    healthy = _cli(server.url, "--connections", "2", "--duration", "5", "--max-requests", "20",
                   "--path", "/cl", "--json")
    assert healthy.returncode == 0, healthy.stderr
    assert json.loads(healthy.stdout)["summary"]["status"] == {"200": 20}
    broken = _cli(server.url, "-c", "2", "-d", "5", "--max-requests", "10", "--path", "/500")
    assert broken.returncode == 3, broken.stderr
    assert "failed 10 (500=10)" in broken.stdout
    refused = _cli("ftp://127.0.0.1", "--duration", "1")
    assert refused.returncode == 2 and "http://" in refused.stderr
