"""A loopback stand-in for the parts of Langfuse's public API the project uses (standard library only).

    python -m standin.langfuse serve --port 9392 --keys-file FILE [--bind ADDR]... [--allow CIDR]...
    python -m standin.langfuse keys FILE --host URL      # a 0600 key file, once (kept when it exists)

Routes (Langfuse's own paths and answers, see standin/langfuse_store.py for the definitions checked):
  GET  /api/public/health     {"status": "OK", "version": ...}, no authentication
  POST /api/public/ingestion  {"batch": [event, ...]} → 207 {"successes": [...], "errors": [...]}
  GET  /api/public/traces     page, limit, name, tags (repeated, all must match), fromTimestamp, toTimestamp, ...
Both API routes take HTTP basic authentication, the public key as user and the secret key as password; anything
else is 401. The keys come from LANGFUSE_PUBLIC_KEY / LANGFUSE_SECRET_KEY in the environment or from a key file
of `KEY=value` lines that only its owner may read (never from argv). A peer outside the `--allow` networks
(default: loopback) is refused before its request is read.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hmac
import ipaddress
import json
import os
import secrets
import stat
import sys
import threading
from collections.abc import Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from standin.langfuse_store import QueryError, TraceStore

VERSION = "3.0.0-devtools-standin"
PUBLIC, SECRET, HOST = "LANGFUSE_PUBLIC_KEY", "LANGFUSE_SECRET_KEY", "LANGFUSE_HOST"
MAX_BODY = 3_500_000  # Langfuse's batch limit (3.5 MB)


class KeysUnavailable(Exception):
    """The keys cannot be had; the message names the variable or the file."""


def parse_key_lines(text: str) -> dict[str, str]:
    """`KEY=value` lines (a value may be double-quoted); comments and blank lines skipped."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        values[key.strip()] = value
    return values


def load_keys(keys_file: str | None, environ: Mapping[str, str]) -> tuple[str, str]:
    """(public, secret) from the key file when given (refused when group or others may read it), else from the
    environment."""
    source: Mapping[str, str] = environ
    where = "the environment"
    if keys_file:
        path = Path(keys_file)
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
            text = path.read_text()
        except OSError as exc:
            raise KeysUnavailable(f"key file {path}: {exc.strerror}") from exc
        if mode & 0o077:
            raise KeysUnavailable(f"key file {path} is mode {mode:04o}: chmod 600 it (others must not read the keys)")
        source, where = parse_key_lines(text), f"key file {path}"
    public, secret = source.get(PUBLIC, ""), source.get(SECRET, "")
    missing = [name for name, value in ((PUBLIC, public), (SECRET, secret)) if not value]
    if missing:
        raise KeysUnavailable(f"{' and '.join(missing)} not set in {where}")
    return public, secret


def write_key_file(path: Path, host: str) -> bool:
    """Create `path` (0600 from its first byte) with new stand-in keys and LANGFUSE_HOST; False when it exists."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as handle:
        handle.write(f"{HOST}={host}\n{PUBLIC}=pk-lf-{secrets.token_hex(16)}\n{SECRET}=sk-lf-{secrets.token_hex(16)}\n")
    return True


def authorized(header: str | None, public: str, secret: str) -> bool:
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        user, sep, password = base64.b64decode(token.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    return bool(sep) and hmac.compare_digest(user.encode(), public.encode()) and \
        hmac.compare_digest(password.encode(), secret.encode())


class Handler(BaseHTTPRequestHandler):
    server: LangfuseServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"{self.address_string()} {format % args}\n")  # never a header: keys stay out of logs

    def _answer(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorized(self) -> bool:
        if authorized(self.headers.get("Authorization"), *self.server.keys):
            return True
        self._answer(401, {"message": "Invalid credentials. Confirm that you've configured the correct host."})
        return False

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/api/public/health":
            self._answer(200, {"status": "OK", "version": VERSION})
        elif url.path == "/api/public/traces":
            if self._authorized():
                try:
                    self._answer(200, self.server.store.list(parse_qs(url.query)))
                except QueryError as exc:
                    self._answer(400, {"message": str(exc)})
        else:
            self._answer(404, {"message": f"no route GET {url.path}"})

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        if url.path != "/api/public/ingestion":
            self._answer(404, {"message": f"no route POST {url.path}"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._answer(413, {"message": f"batch over {MAX_BODY} bytes"})
            return
        raw = self.rfile.read(length)
        if not self._authorized():
            return
        try:
            body = json.loads(raw)
        except ValueError:
            self._answer(400, {"message": "Invalid request data: the body is not JSON"})
            return
        if not isinstance(body, dict) or not isinstance(body.get("batch"), list):
            self._answer(400, {"message": "Invalid request data: batch: a list of events is required"})
            return
        self._answer(207, self.server.store.ingest(body["batch"]))


class LangfuseServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], keys: tuple[str, str], store: TraceStore,
                 allow: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> None:
        self.keys, self.store, self.allow = keys, store, tuple(allow)
        super().__init__(address, Handler)

    def verify_request(self, request: Any, client_address: Any) -> bool:
        peer = ipaddress.ip_address(client_address[0])
        return any(peer in net for net in self.allow)


LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


def serve(binds: Sequence[str], port: int, keys: tuple[str, str], allow: Sequence[str] = (),
          store: TraceStore | None = None) -> list[LangfuseServer]:
    """Start one server per bind address (port 0: an ephemeral port, the same for all), each in its own thread,
    sharing one store; the caller shuts them down."""
    nets = [*LOOPBACK, *(ipaddress.ip_network(a) for a in allow)]
    shared = store or TraceStore()
    servers: list[LangfuseServer] = []
    for bind in binds:
        server = LangfuseServer((bind, port), keys, shared, nets)
        port = server.server_address[1]
        threading.Thread(target=server.serve_forever, name=f"langfuse-{bind}", daemon=True).start()
        servers.append(server)
    return servers


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m standin.langfuse", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("serve", help="answer the API until stopped")
    run.add_argument("--port", type=int, required=True)
    run.add_argument("--bind", action="append", default=[], metavar="ADDR",
                     help="listen address (repeatable; default 127.0.0.1)")
    run.add_argument("--allow", action="append", default=[], metavar="CIDR",
                     help="peers answered besides loopback (repeatable)")
    run.add_argument("--keys-file", metavar="FILE", help="KEY=value file (0600); default: the environment")
    keys = sub.add_parser("keys", help="write a key file of new stand-in keys, unless it exists")
    keys.add_argument("file")
    keys.add_argument("--host", required=True, help="the LANGFUSE_HOST containers use")
    args = parser.parse_args(argv)
    if args.command == "keys":
        made = write_key_file(Path(args.file), args.host)
        print(f"{'wrote' if made else 'kept'} {args.file}")
        return 0
    try:
        pair = load_keys(args.keys_file, os.environ)
    except KeysUnavailable as exc:
        print(f"standin.langfuse: error: {exc}", file=sys.stderr)
        return 2
    binds = args.bind or ["127.0.0.1"]
    serve(binds, args.port, pair, args.allow)
    print(f"langfuse stand-in {VERSION} on {', '.join(f'{b}:{args.port}' for b in binds)}", flush=True)
    threading.Event().wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
