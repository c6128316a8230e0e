"""The gke section of the settings: project, region, cluster mode and sizes, network ranges."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from infra.settings import (
    DNS_LABEL,
    DNS_LABEL_ALLOWED,
    GCP_PROJECT_ALLOWED,
    GCP_PROJECT_ID,
    GCP_REGION,
    GCP_REGION_ALLOWED,
    HOSTNAME,
    HOSTNAME_ALLOWED,
    KEY_CPU,
    KEY_MEMORY,
    ConfigReader,
    Settings,
    check_no_overlap,
    check_replicas,
    parse_cidr,
)

KEY_PROJECT = "gcp:project"
KEY_REGION = "gcp:region"
KEY_CLUSTER_MODE = "modelship:clusterMode"
KEY_RELEASE_CHANNEL = "modelship:releaseChannel"
KEY_DELETION_PROTECTION = "modelship:deletionProtection"
KEY_MACHINE_TYPE = "modelship:machineType"
KEY_NODE_MIN = "modelship:nodeMinCount"
KEY_NODE_MAX = "modelship:nodeMaxCount"
KEY_SPOT = "modelship:spot"
KEY_DOMAIN = "modelship:domain"
KEY_NAMESPACE = "modelship:namespace"
KEY_SUBNET_CIDR = "modelship:subnetCidr"
KEY_PODS_CIDR = "modelship:podsCidr"
KEY_SERVICES_CIDR = "modelship:servicesCidr"

# Kubernetes versions the declared objects are validated against (tests/infra/test_k8s_schema.py):
# the oldest minor still offered by GKE's release channels we support and the newest one, as
# assumed for 2026-11. Update when the channels move on.
KUBERNETES_VERSIONS = ("1.33.0", "1.35.0")

CLUSTER_MODES = ("autopilot", "standard")
RELEASE_CHANNELS = ("RAPID", "REGULAR", "STABLE", "EXTENDED")
MACHINE_TYPE = re.compile(r"[a-z][a-z0-9]*-[a-z0-9]+(-[a-z0-9]+)*")
MACHINE_TYPE_ALLOWED = (
    "a Compute Engine machine type such as e2-standard-2, e2-medium, n2-standard-4"
)

# Autopilot (general-purpose class) moves requests outside these bounds, which shows up as a diff
# on every `up` (CLOUD-PITFALLS 22): 250m..30 vCPU, 512Mi.., and 1..6.5 GiB of memory per vCPU.
AUTOPILOT_MIN_CPU_MILLICORES = 250
AUTOPILOT_MAX_CPU_MILLICORES = 30_000
AUTOPILOT_MIN_MEMORY_BYTES = 512 * 2**20
AUTOPILOT_MIN_GIB_PER_VCPU = 1.0
AUTOPILOT_MAX_GIB_PER_VCPU = 6.5


@dataclass(frozen=True)
class GkeSettings:
    """Validated settings of the gke target."""

    project: str
    region: str
    cluster_mode: str = "autopilot"
    release_channel: str = "REGULAR"
    deletion_protection: bool = False
    machine_type: str = "e2-standard-2"
    node_min_count: int = 1
    node_max_count: int = 3
    spot: bool = False
    domain: str | None = None
    namespace: str = "modelship"
    subnet_cidr: str = "10.10.0.0/20"
    pods_cidr: str = "10.16.0.0/14"
    services_cidr: str = "10.20.0.0/20"

    @property
    def autopilot(self) -> bool:
        return self.cluster_mode == "autopilot"


def read_gke_settings(reader: ConfigReader, settings: Settings) -> GkeSettings:
    """Read and check the gke keys; problems go to `reader`."""
    project = reader.raw(KEY_PROJECT)
    if project is None or not GCP_PROJECT_ID.fullmatch(project):
        reader.problem(
            KEY_PROJECT, project, ("required; " if project is None else "") + GCP_PROJECT_ALLOWED
        )
        project = "invalid-project"
    region = reader.matching(KEY_REGION, "us-central1", GCP_REGION, GCP_REGION_ALLOWED)
    mode = reader.choice(KEY_CLUSTER_MODE, GkeSettings.cluster_mode, CLUSTER_MODES)
    node_min = reader.integer(KEY_NODE_MIN, GkeSettings.node_min_count, 0, 100)
    node_max = reader.integer(KEY_NODE_MAX, GkeSettings.node_max_count, 1, 100)
    check_replicas(reader, KEY_NODE_MIN, KEY_NODE_MAX, node_min, node_max)

    cidrs = {}
    defaults = {
        KEY_SUBNET_CIDR: GkeSettings.subnet_cidr,
        KEY_PODS_CIDR: GkeSettings.pods_cidr,
        KEY_SERVICES_CIDR: GkeSettings.services_cidr,
    }
    for key, default in defaults.items():
        cidrs[key] = reader.parse(
            key,
            parse_cidr(default),
            parse_cidr,
            "an IPv4 CIDR block without host bits, e.g. 10.10.0.0/20",
        )
    check_no_overlap(reader, cidrs)
    _check_private(reader, cidrs)

    domain = reader.optional_string(KEY_DOMAIN)
    if domain is not None and not HOSTNAME.fullmatch(domain):
        reader.problem(KEY_DOMAIN, domain, HOSTNAME_ALLOWED)
        domain = None

    gke = GkeSettings(
        project=project,
        region=region,
        cluster_mode=mode,
        release_channel=reader.choice(
            KEY_RELEASE_CHANNEL, GkeSettings.release_channel, RELEASE_CHANNELS
        ),
        deletion_protection=reader.boolean(
            KEY_DELETION_PROTECTION, GkeSettings.deletion_protection
        ),
        machine_type=reader.matching(
            KEY_MACHINE_TYPE, GkeSettings.machine_type, MACHINE_TYPE, MACHINE_TYPE_ALLOWED
        ),
        node_min_count=node_min,
        node_max_count=max(node_max, node_min),
        spot=reader.boolean(KEY_SPOT, GkeSettings.spot),
        domain=domain,
        namespace=reader.matching(
            KEY_NAMESPACE, GkeSettings.namespace, DNS_LABEL, DNS_LABEL_ALLOWED
        ),
        subnet_cidr=str(cidrs[KEY_SUBNET_CIDR]),
        pods_cidr=str(cidrs[KEY_PODS_CIDR]),
        services_cidr=str(cidrs[KEY_SERVICES_CIDR]),
    )
    if gke.autopilot:
        _check_autopilot_resources(reader, settings)
    return gke


def _check_private(reader: ConfigReader, cidrs: dict[str, ipaddress.IPv4Network]) -> None:
    for key, network in cidrs.items():
        if not network.is_private:
            reader.problem(key, str(network), "must be a private (RFC 1918) range")


def _check_autopilot_resources(reader: ConfigReader, settings: Settings) -> None:
    c = settings.container
    if not AUTOPILOT_MIN_CPU_MILLICORES <= c.cpu_millicores <= AUTOPILOT_MAX_CPU_MILLICORES:
        reader.problem(
            KEY_CPU, c.cpu, "on Autopilot must be from 250m to 30 (Autopilot would rewrite it)"
        )
    if c.memory_bytes < AUTOPILOT_MIN_MEMORY_BYTES:
        reader.problem(
            KEY_MEMORY, c.memory, "on Autopilot must be at least 512Mi (Autopilot would rewrite it)"
        )
    gib_per_vcpu = (c.memory_bytes / 2**30) / (c.cpu_millicores / 1000)
    if not AUTOPILOT_MIN_GIB_PER_VCPU <= gib_per_vcpu <= AUTOPILOT_MAX_GIB_PER_VCPU:
        reader.problem(
            KEY_MEMORY,
            c.memory,
            f"on Autopilot must be 1 to 6.5 GiB per vCPU of {KEY_CPU} ({c.cpu}); "
            f"this is {gib_per_vcpu:.2f}",
        )
