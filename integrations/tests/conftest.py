"""Local HTTP stubs on loopback that record what they receive: a webhook receiver that checks
the signature (as README's snippet does), the Slack Web API, and a Teams webhook."""

import hashlib
import hmac
import json
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.smtp import smtp_mailbox  # noqa: F401 - the loopback SMTP fixture

SECRET = "s3cret-for-the-siem-0123456789abcdef"  # 36 bytes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Server:
    """A threaded HTTP server that can be stopped and started again on the same port."""

    def __init__(self, handler_factory):
        self.port = free_port()
        self._factory = handler_factory
        self._server = None
        self.start()

    def start(self):
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._factory())
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def verify(secret: str, headers, body: bytes) -> bool:
    """README's verification, as a receiver does it."""
    parts = dict(item.split("=", 1) for item in headers.get("X-PIM-Signature", "").split(","))
    expected = hmac.new(
        secret.encode(), parts.get("t", "").encode() + b"." + body, hashlib.sha256
    ).hexdigest()
    return hmac.compare_digest(expected, parts.get("v1", "")) and parts.get("t") == headers.get(
        "X-PIM-Timestamp"
    )


@dataclass
class Receiver:
    """Receives CloudEvents; answers `status` (200 unless told otherwise)."""

    status: int = 200
    events: list = field(default_factory=list)
    bad_signatures: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: _Server | None = None

    def handler(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    if not verify(SECRET, self.headers, body):
                        receiver.bad_signatures += 1
                        self.send_response(401)
                    elif receiver.status == 200:
                        receiver.events.append({"body": json.loads(body), "headers": dict(self.headers)})
                        self.send_response(200)
                    else:
                        self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args):
                pass

        return Handler

    @property
    def seqs(self) -> list[int]:
        return [event["body"]["data"]["seq"] for event in self.events]

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url + "/siem"


@pytest.fixture
def receiver(settings):
    settings.PIM_WEBHOOK_ALLOW_HTTP = True  # the stub is plain http on loopback
    receiver = Receiver()
    receiver.server = _Server(receiver.handler)
    yield receiver
    receiver.server.stop()


@dataclass
class SlackStub:
    """The Slack Web API's methods the portal calls, recorded: (method, arguments)."""

    calls: list = field(default_factory=list)
    users: dict = field(default_factory=dict)  # email -> Slack user id
    fail_with: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: _Server | None = None

    def handler(self):
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, method: str, args: dict):
                with stub.lock:
                    stub.calls.append((method, args, self.headers.get("Authorization", "")))
                    answer = stub.answer(method, args)
                body = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):  # noqa: N802
                parts = urlsplit(self.path)
                args = {k: v[0] for k, v in parse_qs(parts.query).items()}
                self._answer(parts.path.rsplit("/", 1)[-1], args)

            def do_POST(self):  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if "json" in (self.headers.get("Content-Type") or ""):
                    args = json.loads(raw or b"{}")
                else:
                    args = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
                self._answer(urlsplit(self.path).path.rsplit("/", 1)[-1], args)

            def log_message(self, *args):
                pass

        return Handler

    def answer(self, method: str, args: dict) -> dict:
        if self.fail_with:
            return {"ok": False, "error": self.fail_with}
        if method == "users.lookupByEmail":
            user = self.users.get(args.get("email", ""))
            return {"ok": True, "user": {"id": user}} if user else {"ok": False, "error": "users_not_found"}
        if method == "chat.postMessage":
            posts = sum(1 for call in self.calls if call[0] == "chat.postMessage") - 1  # this one counted
            channel = args["channel"]
            return {
                "ok": True,
                "channel": "D" + channel if channel.startswith("U") else channel,
                "ts": f"1700.{posts}",
            }
        if method == "chat.update":
            return {"ok": True, "channel": args["channel"], "ts": args["ts"]}
        return {"ok": False, "error": "unknown_method"}

    def of(self, method: str) -> list[dict]:
        return [args for name, args, _ in self.calls if name == method]


@pytest.fixture
def slack(settings):
    stub = SlackStub()
    stub.server = _Server(stub.handler)
    settings.PIM_SLACK_BOT_TOKEN = "xoxb-test-token"
    settings.PIM_SLACK_API_URL = stub.server.url + "/api/"
    settings.PIM_SLACK_CHANNEL = "C0APPROVALS"
    yield stub
    stub.server.stop()


@dataclass
class TeamsStub:
    cards: list = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: _Server | None = None

    def handler(self):
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                with stub.lock:
                    stub.cards.append(json.loads(raw))
                self.send_response(202)  # what a Workflows trigger answers
                self.end_headers()

            def log_message(self, *args):
                pass

        return Handler


@pytest.fixture
def teams(settings):
    stub = TeamsStub()
    stub.server = _Server(stub.handler)
    settings.PIM_TEAMS_WEBHOOK_URL = stub.server.url + "/workflows/trigger?sig=abc"
    yield stub
    stub.server.stop()
