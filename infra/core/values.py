"""Input values as cloud APIs receive them."""

from __future__ import annotations

from typing import Any


def plain(value: Any) -> Any:
    """Integral floats (the Pulumi engine sends every number as a float) as ints, recursively."""
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
