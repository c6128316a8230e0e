"""JSON responses serialised by orjson, which also writes numpy scalars and arrays natively."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import JSONResponse

_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def dumps(content: Any) -> bytes:
    return orjson.dumps(content, option=_OPTIONS)


class JSONBytes(JSONResponse):
    def render(self, content: Any) -> bytes:
        return dumps(content)
