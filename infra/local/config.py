"""The local section of the settings: host port, bind address, restart policy, platform."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from infra.settings import (
    KEY_MAX_REPLICAS,
    KEY_MIN_REPLICAS,
    KEY_PLATFORM,
    ConfigReader,
    Settings,
)

KEY_HOST_PORT = "modelship:hostPort"
KEY_BIND_ADDRESS = "modelship:bindAddress"
KEY_RESTART = "modelship:restart"
# Docker's restart policies (`docker run --restart`); `on-failure` retries a crashing container.
RESTART_POLICIES = ("no", "on-failure", "always", "unless-stopped")
BIND_ALLOWED = "an IPv4 address of this machine: 127.0.0.1 (only you) or 0.0.0.0 (your network)"


@dataclass(frozen=True)
class LocalSettings:
    """Validated settings of the local target."""

    host_port: int = 8080
    bind_address: str = "127.0.0.1"
    restart: str = "unless-stopped"
    native_platform: bool = True
    """Build for this machine's platform unless `modelship:platform` is set."""

    @property
    def url_host(self) -> str:
        """The host name in the `url` output: localhost unless bound to one specific address."""
        return "localhost" if self.bind_address in ("127.0.0.1", "0.0.0.0") else self.bind_address  # noqa: S104


def _parse_ipv4(value: str) -> str:
    return str(ipaddress.IPv4Address(value))


def read_local_settings(reader: ConfigReader, settings: Settings) -> LocalSettings:
    """Read and check the local keys; problems go to `reader`."""
    scaling = settings.scaling
    for key, value in (
        (KEY_MIN_REPLICAS, scaling.min_replicas),
        (KEY_MAX_REPLICAS, scaling.max_replicas),
    ):
        if value != 1:
            reader.problem(
                key,
                str(value),
                "the local target runs exactly one container: must be 1 "
                "(modelship:scaleToZero true stops it)",
            )
    return LocalSettings(
        host_port=reader.integer(KEY_HOST_PORT, LocalSettings.host_port, 1024, 65535),
        bind_address=reader.parse(
            KEY_BIND_ADDRESS, LocalSettings.bind_address, _parse_ipv4, BIND_ALLOWED
        ),
        restart=reader.choice(KEY_RESTART, LocalSettings.restart, RESTART_POLICIES),
        native_platform=reader.raw(KEY_PLATFORM) is None,
    )
