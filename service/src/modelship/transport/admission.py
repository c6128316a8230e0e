"""The one interface between a server adapter and the service: admit a request (take a slot)
or refuse it (with the service's own 503 bytes), and give the slot back.

A server adapter (`modelship.transport.uvicorn`) asks it as soon as a request's headers are
parsed; the HTTP app (`modelship.transport.http`) implements it and, for requests no adapter
admitted, applies the same rule in its middleware. Neither knows the other: this module is all
they share, and it imports no framework.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

# Set in the ASGI scope by an adapter that has already taken the request's slot (and gives it
# back when the request's task ends), so the middleware does not take a second one.
ADMITTED = "modelship.admitted"
REQUEST_ID_HEADER = b"x-request-id"


class Slots(Protocol):
    """The requests in flight, bounded by the expected wait behind them (the data plane's)."""

    in_flight: int
    max_in_flight: int

    def full(self) -> bool:
        """Whether a request arriving now is refused (the one admission rule). Asked once per
        arriving request: a True is counted as a refusal."""
        ...

    def admit(self, count_shed: bool = True) -> bool:
        """Take a slot, or False when `full` (`count_shed`: count the refusal now)."""
        ...

    def release(self) -> None:
        """Give a slot back."""
        ...


class Admission(Protocol):
    """What an adapter asks per request; probes are never shed, refusals are pre-rendered."""

    @property
    def slots(self) -> Slots: ...

    def never_shed(self, path: str) -> bool:
        """Whether `path` is always served (probes, /metrics), whatever the load."""
        ...

    def refusal(self, path: str, keep_alive: bool) -> tuple[bytes, bytes]:
        """The 503's header lines (after the status line and the server's own headers, ending
        with the blank line) and body, in the shape of `path`'s protocol."""
        ...

    def request_id(self, supplied: bytes | None) -> bytes:
        """The id a response carries: the client's when valid, else a fresh one."""
        ...

    def refused(self, by_method: Mapping[str, int], seconds: float) -> None:
        """Account for refusals an adapter answered itself over the last `seconds`."""
        ...


def find_admission(app: Any) -> Admission | None:
    """The admission of the modelship app inside a server's wrappers (proxy headers, ...)."""
    while app is not None:
        admission = getattr(getattr(app, "state", None), "admission", None)
        if admission is not None:
            return admission  # type: ignore[no-any-return]
        app = getattr(app, "app", None)
    return None
