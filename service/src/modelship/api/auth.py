"""Optional API-key access control: when a key is configured, everything but probes needs it.

Checked by the serving middleware (`modelship.api.middleware`); this module says which key and
which paths are open.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from modelship.errors import ModelshipError, Unauthorized
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
MISSING_KEY = Unauthorized(
    "this server needs an API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
)
WRONG_KEY = Unauthorized("the API key is not valid")


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


class KeyCheck:
    """Keys are compared as SHA-256 digests with `hmac.compare_digest`, so the comparison takes
    the same time whatever the key's content or length."""

    def __init__(self, key: bytes) -> None:
        self._digest = hashlib.sha256(key).digest()

    def refusal(self, supplied: bytes | None) -> Unauthorized | None:
        """None when `supplied` is the key, else the error to answer with."""
        if supplied is None:
            return MISSING_KEY
        if hmac.compare_digest(hashlib.sha256(supplied).digest(), self._digest):
            return None
        return WRONG_KEY
