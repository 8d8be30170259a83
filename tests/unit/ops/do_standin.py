"""A loopback HTTPS stand-in for the part of DigitalOcean's API an SSH lease calls, following its documented
shapes (and godo's, the Go client the Terraform provider uses): bearer-token authentication, paginated
`GET /v2/firewalls` (`firewalls`, `links`, `meta.total`), `POST /v2/firewalls` (202, `firewall` with status
`waiting`), `GET /v2/firewalls/{id}` (status `succeeded` once applied), `DELETE /v2/firewalls/{id}` (204; 404
`not_found`), `POST /v2/tags` (201, `tag`); and a volume's snapshots: `POST /v2/volumes/{id}/snapshots` (201,
`snapshot`), paginated `GET /v2/volumes/{id}/snapshots` (`snapshots`, `meta.total`), `DELETE
/v2/volumes/snapshots/{id}` (204; 404 `not_found`). It refuses what the API refuses: a bad name, a firewall without
rules, a rule without protocol, ports or sources, a tag that does not exist, a snapshot without a name, a volume it
does not know. Every request is recorded.

    with DoStandin(tmp_path, token="dop_v1_test") as do:
        do.url, do.ca_file, do.requests, do.firewalls
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import re
import ssl
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]*")


def self_signed(tmp: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp / "do-standin.crt", tmp / "do-standin.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


class DoStandin:
    def __init__(self, tmp: Path, token: str, public_ip: str = "52.170.12.7") -> None:
        self.token = token
        self.public_ip = public_ip
        self.firewalls: dict[str, dict[str, Any]] = {}
        self.tags: set[str] = set()
        self.volumes: set[str] = set()
        self.snapshots: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str, dict[str, Any] | None]] = []
        self.ca_file, key_file = self_signed(tmp)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.ca_file, key_file)
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def do_GET(self) -> None:
                standin.handle(self, "GET")

            def do_POST(self) -> None:
                standin.handle(self, "POST")

            def do_DELETE(self) -> None:
                standin.handle(self, "DELETE")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> DoStandin:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def add_firewall(self, name: str, addresses: list[str], tag: str = "devtools-prod") -> str:
        fid = str(uuid.uuid4())
        self.firewalls[fid] = {"id": fid, "name": name, "status": "succeeded", "tags": [tag], "droplet_ids": [],
                               "inbound_rules": [{"protocol": "tcp", "ports": "22",
                                                  "sources": {"addresses": addresses}}],
                               "outbound_rules": [], "pending_changes": [], "created_at": "2026-12-01T10:00:00Z"}
        return fid

    def add_snapshot(self, volume_id: str, name: str, created_at: str = "2026-12-01T10:00:00Z") -> str:
        sid = str(uuid.uuid4())
        self.snapshots[sid] = {"id": sid, "name": name, "resource_id": volume_id, "resource_type": "volume",
                               "regions": ["nyc3"], "min_disk_size": 100, "size_gigabytes": 1.5, "tags": [],
                               "created_at": created_at}
        return sid

    def handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        url = urlsplit(h.path)
        length = int(h.headers.get("Content-Length") or 0)
        body = json.loads(h.rfile.read(length)) if length else None
        self.requests.append((method, h.path, body))
        if url.path == "/ip":
            self.reply(h, 200, None, text=self.public_ip)
        elif h.headers.get("Authorization") != f"Bearer {self.token}":
            self.reply(h, 401, {"id": "unauthorized", "message": "Unable to authenticate you"})
        elif method == "POST" and h.headers.get("Content-Type", "").split(";")[0] != "application/json":
            self.reply(h, 400, {"id": "bad_request", "message": "expected a JSON body"})
        else:
            self.reply(h, *self.route(method, url.path, parse_qs(url.query), body or {}))

    def route(self, method: str, path: str, query: dict[str, list[str]], body: dict[str, Any]
              ) -> tuple[int, dict[str, Any] | None]:
        match = re.fullmatch(r"/v2/firewalls/([0-9a-f-]+)", path)
        found = match.group(1) if match and match.group(1) in self.firewalls else None
        answer: tuple[int, dict[str, Any] | None] = (
            404, {"id": "not_found", "message": "The resource you requested could not be found."})
        volume = re.fullmatch(r"/v2/volumes/([0-9a-f-]+)/snapshots", path)
        snapshot = re.fullmatch(r"/v2/volumes/snapshots/([0-9a-f-]+)", path)
        if volume and volume.group(1) in self.volumes:
            answer = self.volume_snapshots(method, volume.group(1), query, body)
        elif snapshot and method == "DELETE" and snapshot.group(1) in self.snapshots:
            del self.snapshots[snapshot.group(1)]
            answer = (204, None)
        elif (method, path) == ("GET", "/v2/firewalls"):
            page, per_page = int(query.get("page", ["1"])[0]), int(query.get("per_page", ["20"])[0])
            items = list(self.firewalls.values())
            answer = (200, {"firewalls": items[(page - 1) * per_page:page * per_page], "links": {},
                            "meta": {"total": len(items)}})
        elif (method, path) == ("POST", "/v2/firewalls"):
            answer = self.create_firewall(body)
        elif (method, path) == ("POST", "/v2/tags"):
            answer = self.create_tag(str(body.get("name", "")))
        elif found and method == "GET":
            answer = (200, {"firewall": self.firewalls[found]})
        elif found and method == "DELETE":
            del self.firewalls[found]
            answer = (204, None)
        return answer

    def volume_snapshots(self, method: str, volume_id: str, query: dict[str, list[str]], body: dict[str, Any]
                         ) -> tuple[int, dict[str, Any]]:
        if method == "POST":
            if not str(body.get("name") or ""):
                return 422, {"id": "unprocessable_entity", "message": "name is required"}
            sid = self.add_snapshot(volume_id, str(body["name"]), "2026-12-02T12:00:05Z")
            return 201, {"snapshot": self.snapshots[sid]}
        page, per_page = int(query.get("page", ["1"])[0]), int(query.get("per_page", ["20"])[0])
        items = [s for s in self.snapshots.values() if s["resource_id"] == volume_id]
        return 200, {"snapshots": items[(page - 1) * per_page:page * per_page], "links": {},
                     "meta": {"total": len(items)}}

    def create_tag(self, name: str) -> tuple[int, dict[str, Any]]:
        if not re.fullmatch(r"[A-Za-z0-9:_-]{1,255}", name):
            return 422, {"id": "unprocessable_entity", "message": "invalid tag name"}
        self.tags.add(name)  # creating a tag that exists answers the same (the lease tolerates 409/422 too)
        return 201, {"tag": {"name": name, "resources": {"count": 0}}}

    def create_firewall(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        problems = []
        if not NAME.fullmatch(str(body.get("name", ""))):
            problems.append("name must begin with an alphanumeric character, then alphanumerics, '.' or '-'")
        inbound, outbound = body.get("inbound_rules") or [], body.get("outbound_rules") or []
        if not inbound and not outbound:
            problems.append("a firewall needs at least one inbound or outbound rule")
        for rule in inbound:
            if rule.get("protocol") not in ("tcp", "udp", "icmp") or not isinstance(rule.get("ports"), str) \
                    or not any((rule.get("sources") or {}).values()):
                problems.append(f"inbound rule {rule} needs protocol, ports and sources")
        problems += [f"tag {t} not found" for t in body.get("tags") or [] if t not in self.tags]
        if problems:
            return 400, {"id": "bad_request", "message": "; ".join(problems)}
        fid = str(uuid.uuid4())
        self.firewalls[fid] = {**body, "id": fid, "status": "waiting", "pending_changes": [],
                               "created_at": "2026-12-02T08:00:00Z"}
        reply = dict(self.firewalls[fid])
        self.firewalls[fid]["status"] = "succeeded"  # applied by the time anyone asks
        return 202, {"firewall": reply}

    @staticmethod
    def reply(h: BaseHTTPRequestHandler, status: int, payload: dict[str, Any] | None, text: str = "") -> None:
        data = json.dumps(payload).encode() if payload is not None else text.encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json" if payload is not None else "text/plain")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)
