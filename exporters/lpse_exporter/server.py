"""HTTP(S) server for /metrics with optional bcrypt basic auth (exporter-toolkit conventions)."""

from __future__ import annotations

import base64
import hmac
import ssl
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

from lpse_exporter.config import WebConfig

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
        pass  # one line per scrape would flood the journal


def basic_auth(app: WsgiApp, users: dict[str, str]) -> WsgiApp:
    """Check bcrypt hashes; remember good (user, password) pairs, bcrypt is slow on purpose."""
    import bcrypt

    good: set[tuple[str, bytes]] = set()
    lock = threading.Lock()

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        header = environ.get("HTTP_AUTHORIZATION", "")
        if header.startswith("Basic "):
            try:
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                user, password = "", ""
            key = (user, hmac.digest(b"lpse", password.encode(), "sha256"))
            with lock:
                ok = key in good
            if not ok and user in users and bcrypt.checkpw(password.encode(), users[user].encode()):
                with lock:
                    good.add(key)
                ok = True
            if ok:
                return app(environ, start_response)
        start_response(
            "401 Unauthorized", [("WWW-Authenticate", 'Basic realm="lpse-exporter"'), ("Content-Type", "text/plain")]
        )
        return [b"Unauthorized\n"]

    return wrapped


def serve(registry: CollectorRegistry, address: str, port: int, web: WebConfig) -> WSGIServer:
    app: WsgiApp = make_wsgi_app(registry)
    if web.basic_auth_users:
        app = basic_auth(app, web.basic_auth_users)
    httpd = make_server(address, port, app, server_class=_ThreadingServer, handler_class=_QuietHandler)
    if web.cert_file and web.key_file:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(web.cert_file, web.key_file)
        httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    return httpd
