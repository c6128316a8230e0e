"""The gke section of the settings: project, region, cluster mode and sizes, network ranges."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Protocol

from infra.config import (
    DNS_LABEL,
    DNS_LABEL_ALLOWED,
    HOSTNAME,
    HOSTNAME_ALLOWED,
    ConfigReader,
    check_no_overlap,
    check_replicas,
    parse_cidr,
)
from infra.core.batch import KEY_BATCH_CPU, KEY_BATCH_MEMORY
from infra.core.model_store import (
    KEY_TRAINING_CPU,
    KEY_TRAINING_MEMORY,
    ModelStoreSettings,
    read_model_store,
)
from infra.kubernetes.monitoring import KEY_POD_MONITOR, POD_MONITOR_OFF, POD_MONITORS
from infra.settings import KEY_CPU, KEY_MEMORY, Settings

GCP_REGION = re.compile(r"[a-z]+-[a-z]+[1-9][0-9]*")
GCP_REGION_ALLOWED = "a Google Cloud region such as us-central1, europe-west4, asia-southeast1"
GCP_PROJECT_ID = re.compile(r"[a-z][a-z0-9-]{4,28}[a-z0-9]")
GCP_PROJECT_ALLOWED = (
    "a Google Cloud project id: 6-30 lowercase letters, digits or hyphens, starting with a "
    "letter (set it with `pulumi config set gcp:project <id>`)"
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
KEY_MODEL_STORE_KMS_KEY = "modelship:modelStoreKmsKey"
KEY_TRAINING_SCHEDULE = "modelship:trainingSchedule"

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
# on every `up`: 250m..30 vCPU, 512Mi.., and 1..6.5 GiB of memory per vCPU.
AUTOPILOT_MIN_CPU_MILLICORES = 250
AUTOPILOT_MAX_CPU_MILLICORES = 30_000
AUTOPILOT_MIN_MEMORY_BYTES = 512 * 2**20
AUTOPILOT_MIN_GIB_PER_VCPU = 1.0
AUTOPILOT_MAX_GIB_PER_VCPU = 6.5

KMS_KEY = re.compile(
    r"projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)/keyRings/[^/]+/cryptoKeys/[^/]+"
)
KMS_KEY_ALLOWED = (
    "a Cloud KMS key name, projects/P/locations/REGION/keyRings/R/cryptoKeys/K, in the "
    "stack's region (unset: Google-managed encryption)"
)
# Kubernetes CronJob schedules: five cron fields (minute hour day-of-month month day-of-week)
# or one of the macros the CronJob controller knows.
_CRON_FIELD = r"[0-9A-Za-z*?/,\-]+"
CRON = re.compile(
    rf"({_CRON_FIELD}\s+){{4}}{_CRON_FIELD}|@(yearly|annually|monthly|weekly|daily|midnight|hourly)"
)
CRON_ALLOWED = (
    "a cron schedule in UTC, five fields such as '0 3 * * 1' (Mondays 03:00) or @weekly, @daily "
    "(unset: the training job runs only when started)"
)


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
    store: ModelStoreSettings = field(default_factory=ModelStoreSettings)
    kms_key: str | None = None
    training_schedule: str | None = None
    pod_monitor: str = POD_MONITOR_OFF

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
        store=read_model_store(reader, settings, "gs"),
        kms_key=_read_kms_key(reader, region),
        training_schedule=reader.matching(KEY_TRAINING_SCHEDULE, "", CRON, CRON_ALLOWED) or None,
        pod_monitor=reader.choice(KEY_POD_MONITOR, POD_MONITOR_OFF, POD_MONITORS),
    )
    if gke.autopilot:
        for cpu_key, memory_key, size in (
            (KEY_CPU, KEY_MEMORY, settings.container),
            (KEY_TRAINING_CPU, KEY_TRAINING_MEMORY, gke.store.training),
            (KEY_BATCH_CPU, KEY_BATCH_MEMORY, gke.store.batch),
        ):
            _check_autopilot_resources(reader, cpu_key, memory_key, size)
    return gke


def _read_kms_key(reader: ConfigReader, region: str) -> str | None:
    key = reader.optional_string(KEY_MODEL_STORE_KMS_KEY)
    if key is None:
        return None
    match = KMS_KEY.fullmatch(key)
    if match is None:
        reader.problem(KEY_MODEL_STORE_KMS_KEY, key, KMS_KEY_ALLOWED)
        return None
    if match["location"] != region:
        reader.problem(
            KEY_MODEL_STORE_KMS_KEY,
            key,
            f"must be in the bucket's location {region} (GCS uses only keys of its own region)",
        )
        return None
    return key


def _check_private(reader: ConfigReader, cidrs: dict[str, ipaddress.IPv4Network]) -> None:
    for key, network in cidrs.items():
        if not network.is_private:
            reader.problem(key, str(network), "must be a private (RFC 1918) range")


class _Size(Protocol):
    """A container's CPU and memory as configured and as numbers (service or training)."""

    @property
    def cpu(self) -> str: ...
    @property
    def memory(self) -> str: ...
    @property
    def cpu_millicores(self) -> int: ...
    @property
    def memory_bytes(self) -> int: ...


def _check_autopilot_resources(
    reader: ConfigReader, cpu_key: str, memory_key: str, size: _Size
) -> None:
    """A container's requests must be inside Autopilot's bounds, or Autopilot rewrites them."""
    cpu, memory = size.cpu, size.memory
    cpu_millicores, memory_bytes = size.cpu_millicores, size.memory_bytes
    if not AUTOPILOT_MIN_CPU_MILLICORES <= cpu_millicores <= AUTOPILOT_MAX_CPU_MILLICORES:
        reader.problem(
            cpu_key, cpu, "on Autopilot must be from 250m to 30 (Autopilot would rewrite it)"
        )
    if memory_bytes < AUTOPILOT_MIN_MEMORY_BYTES:
        reader.problem(
            memory_key, memory, "on Autopilot must be at least 512Mi (Autopilot would rewrite it)"
        )
    gib_per_vcpu = (memory_bytes / 2**30) / (cpu_millicores / 1000)
    if not AUTOPILOT_MIN_GIB_PER_VCPU <= gib_per_vcpu <= AUTOPILOT_MAX_GIB_PER_VCPU:
        reader.problem(
            memory_key,
            memory,
            f"on Autopilot must be 1 to 6.5 GiB per vCPU of {cpu_key} ({cpu}); "
            f"this is {gib_per_vcpu:.2f}",
        )
