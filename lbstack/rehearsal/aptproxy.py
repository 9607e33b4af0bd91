"""A small HTTP forward proxy for apt inside rehearsal containers (stdlib only).

Containers have no outbound route; apt in them is pointed here with
``Acquire::http::Proxy``. The proxy listens on the host side of the container's veth,
handles absolute-URI GET and HEAD for the allowed mirror hosts only (this machine's own
apt sources), streams bodies and closes each connection after one response.

Run as a script: ``python3 aptproxy.py --listen 10.213.1.1 --port 3142 --allow HOST[:PORT] ...``
"""

from __future__ import annotations

import argparse
import http.client
import http.server
import shutil
import socket
from urllib.parse import urlsplit

CONNECT_TIMEOUT_S = 15.0
IO_TIMEOUT_S = 60.0
CHUNK_BYTES = 64 * 1024
HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
    "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
}


class ProxyHandler(http.server.BaseHTTPRequestHandler):
    """Forward one absolute-URI request upstream and stream the answer back."""

    allowed_hosts: frozenset[str] = frozenset()
    protocol_version = "HTTP/1.0"
    timeout = IO_TIMEOUT_S

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        self._forward()

    def do_HEAD(self) -> None:  # noqa: N802
        self._forward()

    def _forward(self) -> None:
        url = urlsplit(self.path)
        if url.scheme != "http" or url.netloc not in self.allowed_hosts:
            self.send_error(403, f"proxy only forwards http to {', '.join(sorted(self.allowed_hosts))}")
            return
        upstream = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=CONNECT_TIMEOUT_S)
        try:
            path = url.path + (f"?{url.query}" if url.query else "")
            upstream.request(self.command, path or "/", headers=self._upstream_headers(url.netloc))
            upstream.sock.settimeout(IO_TIMEOUT_S)
            self._relay(upstream.getresponse())
        except OSError as error:
            self.send_error(502, f"upstream {url.netloc}: {error}")
        finally:
            upstream.close()

    def _upstream_headers(self, netloc: str) -> dict[str, str]:
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        headers["Host"] = netloc
        headers["Connection"] = "close"
        return headers

    def _relay(self, response: http.client.HTTPResponse) -> None:
        self.log_request(response.status)
        self.send_response_only(response.status, response.reason)  # upstream's Date/Server only
        for key, value in response.getheaders():
            if key.lower() not in HOP_BY_HOP:
                self.send_header(key, value)
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            shutil.copyfileobj(response, self.wfile, CHUNK_BYTES)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (signature of the base)
        print(f"{self.address_string()} {format % args}", flush=True)


def serve(listen: str, port: int, allowed_hosts: list[str]) -> None:
    """Serve forever on ``listen:port``, forwarding only to ``allowed_hosts``."""
    handler = type("Handler", (ProxyHandler,), {"allowed_hosts": frozenset(allowed_hosts)})
    http.server.ThreadingHTTPServer.allow_reuse_address = True
    with http.server.ThreadingHTTPServer((listen, port), handler) as server:
        server.daemon_threads = True
        server.serve_forever()


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True, help="address to bind (the veth host side)")
    parser.add_argument("--port", type=int, default=3142)
    parser.add_argument("--allow", action="append", default=[], help="upstream host[:port]")
    args = parser.parse_args()
    socket.setdefaulttimeout(IO_TIMEOUT_S)
    serve(args.listen, args.port, args.allow)


if __name__ == "__main__":
    main()
