"""Optional API-key access control: when a key is configured, everything but probes needs it."""

from __future__ import annotations

import hashlib
import hmac
import re

from starlette.types import ASGIApp, Receive, Scope, Send

from modelship.api.responses import send_json
from modelship.errors import ModelshipError
from modelship.settings import Settings

# Open with or without a key: probes, metrics, the page and its assets (the training report and
# its plots among them: a browser's link or <img> cannot send a key), the API docs.
OPEN_PATHS = frozenset(
    {
        "/",
        "/healthz",
        "/readyz",
        "/metrics",
        "/docs",
        "/docs/oauth2-redirect",
        "/redoc",
        "/openapi.json",
        "/favicon.ico",
        "/model/report",
        "/v2",
        "/v2/health/live",
        "/v2/health/ready",
    }
)
OPEN_PREFIXES = ("/ui/", "/model/report/")
V2_MODEL_READY = re.compile(r"^/v2/models/[^/]+(/versions/[^/]+)?/ready$")


def configured_key(settings: Settings) -> bytes | None:
    """The key from MODELSHIP_API_KEY_FILE (a mounted secret) or MODELSHIP_API_KEY, if any."""
    if settings.api_key_file is not None and settings.api_key is not None:
        raise ModelshipError(
            "set only one of MODELSHIP_API_KEY or MODELSHIP_API_KEY_FILE, not both"
        )
    if settings.api_key_file is not None:
        try:
            text = settings.api_key_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ModelshipError(
                f"MODELSHIP_API_KEY_FILE {settings.api_key_file}: cannot read it "
                f"({exc.strerror or exc})"
            ) from exc
        if not text:
            raise ModelshipError(f"MODELSHIP_API_KEY_FILE {settings.api_key_file} is empty")
        return text.encode()
    if settings.api_key is not None:
        text = settings.api_key.get_secret_value().strip()
        if not text:
            raise ModelshipError("MODELSHIP_API_KEY is set but empty")
        return text.encode()
    return None


def is_open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES) or bool(V2_MODEL_READY.match(path))


def _digest(key: bytes) -> bytes:
    return hashlib.sha256(key).digest()


class ApiKeyAuth:
    """Pure ASGI middleware. Keys are compared as SHA-256 digests with `hmac.compare_digest`,
    so the comparison takes the same time whatever the key's content or length."""

    def __init__(self, app: ASGIApp, key: bytes) -> None:
        self.app = app
        self._digest = _digest(key)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_open(scope["path"]):
            await self.app(scope, receive, send)
            return
        supplied: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"x-api-key":
                supplied = value.strip()
                break
            if name == b"authorization":
                scheme, _, token = value.partition(b" ")
                if scheme.lower() == b"bearer":
                    supplied = token.strip()
                    break
        if supplied is not None and hmac.compare_digest(_digest(supplied), self._digest):
            await self.app(scope, receive, send)
            return
        await _refuse(scope, send, supplied is None)


async def _refuse(scope: Scope, send: Send, missing: bool) -> None:
    message = (
        "this server needs an API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
        if missing
        else "the API key is not valid"
    )
    if scope["path"].startswith("/v2/"):
        content: object = {"error": message}
    else:
        content = {"error": {"status": 401, "type": "unauthorized", "message": message}}
    await send_json(send, 401, content, [(b"www-authenticate", b'Bearer realm="modelship"')])
