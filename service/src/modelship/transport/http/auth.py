"""Optional API-key access control: when a key is configured, everything but probes needs it.

Checked by the serving middleware (`modelship.transport.http.middleware`); this module says
which paths are open and compares keys. Which key (and whether its settings are usable) is the
settings' rule: `Settings.required_key`.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from modelship.errors import Unauthorized

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
