"""Reading a stack's config: the problem-collecting reader, its errors and the generic parsers.

A wrong stack file fails `pulumi preview` with every bad key at once: `ConfigReader` collects a
`Problem` (the key, the value and what is allowed) per bad value instead of raising on the first,
and `raise_if_problems` raises one `ConfigError` listing them all. The parsers and checks here
know no cloud (Kubernetes quantities, CIDR blocks, DNS names); the shared settings are read in
`infra.settings`, each target's own section beside the target (`infra/targets/<name>/config.py`),
a cloud's rules beside that cloud (the Fargate task sizes in `infra/targets/fargate/sizes.py`).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TypeVar

import pulumi
import pulumi.runtime.config as runtime_config

PROJECT_NAMESPACE = "modelship"
T = TypeVar("T")


# --------------------------------------------------------------------------- errors


@dataclass(frozen=True)
class Problem:
    """One invalid config value: which key, what it was, and what would be accepted."""

    key: str
    value: str | None
    allowed: str

    def render(self) -> str:
        shown = "(not set)" if self.value is None else repr(self.value)
        return f"{self.key} = {shown}: {self.allowed}"


class ConfigError(Exception):
    """Raised before any resource is declared when the stack's config is invalid."""

    def __init__(self, stack: str, problems: Iterable[Problem]) -> None:
        self.stack = stack
        self.problems = tuple(problems)
        lines = [f"invalid configuration for stack '{stack}':"]
        lines += [f"  - {p.render()}" for p in self.problems]
        lines.append(f"fix with: pulumi config set <key> <value> -s {stack}")
        super().__init__("\n".join(lines))


# --------------------------------------------------------------------------- reader


class ConfigReader:
    """Reads raw config values and collects problems instead of raising on the first one.

    Every key read is remembered, so `check_unknown_keys` can reject a misspelled
    `modelship:minReplica` that would otherwise be silently ignored.
    """

    def __init__(self, stack: str, all_keys: Iterable[str] | None = None) -> None:
        self.stack = stack
        self.problems: list[Problem] = []
        self.known_keys: set[str] = set()
        self._all_keys = set(all_keys) if all_keys is not None else set(_configured_keys())

    # raw access -------------------------------------------------------------
    def raw(self, key: str) -> str | None:
        """The raw string value of a fully qualified key (`namespace:name`), or None."""
        self.known_keys.add(key)
        namespace, name = key.split(":", 1)
        value = pulumi.Config(namespace).get(name)
        return None if value is None or value == "" else value

    def secret(self, key: str) -> pulumi.Output[str] | None:
        """A secret value as a secret Output (never logged, never shown in errors)."""
        self.known_keys.add(key)
        namespace, name = key.split(":", 1)
        return pulumi.Config(namespace).get_secret(name)

    def problem(self, key: str, value: str | None, allowed: str) -> None:
        self.problems.append(Problem(key, value, allowed))

    # typed access ----------------------------------------------------------
    def parse(self, key: str, default: T, parser: Callable[[str], T], allowed: str) -> T:
        """Parse `key` with `parser` (which raises ValueError on bad input); default if unset."""
        value = self.raw(key)
        if value is None:
            return default
        try:
            return parser(value)
        except ValueError:
            self.problem(key, value, allowed)
            return default

    def string(self, key: str, default: str) -> str:
        return self.raw(key) or default

    def optional_string(self, key: str) -> str | None:
        return self.raw(key)

    def boolean(self, key: str, default: bool) -> bool:
        return self.parse(key, default, parse_bool, "must be true or false")

    def integer(self, key: str, default: int, minimum: int, maximum: int) -> int:
        value = self.parse(key, default, int, f"must be an integer from {minimum} to {maximum}")
        if not minimum <= value <= maximum:
            self.problem(key, str(value), f"must be an integer from {minimum} to {maximum}")
            return default
        return value

    def choice(self, key: str, default: str, allowed: Iterable[str]) -> str:
        options = tuple(allowed)
        value = self.raw(key)
        if value is None:
            return default
        if value not in options:
            self.problem(key, value, "must be one of " + ", ".join(options))
            return default
        return value

    def matching(self, key: str, default: str, pattern: re.Pattern[str], allowed: str) -> str:
        value = self.raw(key)
        if value is None:
            return default
        if not pattern.fullmatch(value):
            self.problem(key, value, allowed)
            return default
        return value

    # closing ----------------------------------------------------------------
    def check_unknown_keys(self, namespace: str = PROJECT_NAMESPACE) -> None:
        """Every configured `namespace:*` key must have been read by the target's settings."""
        for key in sorted(self._all_keys):
            if key.startswith(f"{namespace}:") and key not in self.known_keys:
                known = ", ".join(sorted(k for k in self.known_keys if k.startswith(namespace)))
                self.problem(key, None, f"unknown key for this target; known keys: {known}")

    def raise_if_problems(self) -> None:
        if self.problems:
            raise ConfigError(self.stack, self.problems)


def _configured_keys() -> list[str]:
    """Keys the engine passed to this program (the same sources `pulumi.Config` reads)."""
    keys = set(runtime_config.CONFIG.get()) | set(runtime_config.get_config_env())
    return sorted(keys)


# --------------------------------------------------------------------------- parsers and checks

_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}


def parse_bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(value)


# Kubernetes quantity grammar (resource.Quantity): a signed decimal number with an optional
# binary (Ki..Ei), decimal (n, u, m, k, M..E) or exponent (e3) suffix.
_QUANTITY = re.compile(
    r"(?P<num>\+?(\d+(\.\d*)?|\.\d+))(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?"
)
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}


def parse_quantity(value: str) -> Decimal:
    """A Kubernetes quantity as a Decimal in base units; ValueError if Kubernetes rejects it."""
    match = _QUANTITY.fullmatch(value.strip())
    if match is None or value != value.strip():
        raise ValueError(value)
    try:
        number = Decimal(match["num"])
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only decimals
        raise ValueError(value) from exc
    suffix = match["suffix"] or ""
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix in _DECIMAL:
        return number * _DECIMAL[suffix]
    return number * (Decimal(10) ** int(suffix[1:]))


def parse_cpu_millicores(value: str) -> int:
    """`500m`, `0.5`, `1` → millicores; whole millicores only (Kubernetes' precision for CPU)."""
    millicores = parse_quantity(value) * 1000
    if millicores <= 0 or millicores != millicores.to_integral_value():
        raise ValueError(value)
    return int(millicores)


def parse_memory_bytes(value: str) -> int:
    """`512Mi`, `1Gi`, `1G` → bytes; whole bytes of at least 4 MiB (no `m` milli-bytes)."""
    quantity = parse_quantity(value)
    if quantity != quantity.to_integral_value() or quantity < 4 * 2**20:
        raise ValueError(value)
    return int(quantity)


CPU_ALLOWED = "a Kubernetes CPU quantity of whole millicores, e.g. 250m, 500m, 1, 2"
MEMORY_ALLOWED = "a Kubernetes memory quantity of whole bytes, at least 4Mi, e.g. 512Mi, 1Gi"

DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
DNS_LABEL_ALLOWED = (
    "a DNS-1123 label: at most 63 lowercase letters, digits or '-', alphanumeric at both ends"
)
HOSTNAME = re.compile(r"(?=.{1,253}$)([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")
HOSTNAME_ALLOWED = "a fully qualified lowercase domain name such as api.example.com"


def parse_cidr(value: str) -> ipaddress.IPv4Network:
    """An IPv4 CIDR block with no host bits set (`10.10.0.0/20`)."""
    network = ipaddress.ip_network(value, strict=True)
    if not isinstance(network, ipaddress.IPv4Network):
        raise ValueError(value)
    return network


def check_replicas(
    reader: ConfigReader, min_key: str, max_key: str, minimum: int, maximum: int
) -> None:
    """max must not be below min (each already checked for range)."""
    if maximum < minimum:
        reader.problem(max_key, str(maximum), f"must be >= {min_key} ({minimum})")


def check_no_overlap(reader: ConfigReader, ranges: Mapping[str, ipaddress.IPv4Network]) -> None:
    """CIDR ranges given by key must not overlap each other."""
    items = list(ranges.items())
    for i, (key_a, net_a) in enumerate(items):
        for key_b, net_b in items[i + 1 :]:
            if net_a.overlaps(net_b):
                reader.problem(key_b, str(net_b), f"must not overlap {key_a} ({net_a})")
