"""The k8s section of the settings: which cluster, which image, how the service is exposed.

Every key is optional except the image: either `modelship:image` (a reference the cluster can
pull, ideally pinned by digest) or `modelship:registry` (the stack builds and pushes there).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi

from infra.config import DNS_LABEL, DNS_LABEL_ALLOWED, HOSTNAME, HOSTNAME_ALLOWED, ConfigReader
from infra.core.batch import BatchSettings, read_batch
from infra.core.model_store import (
    KEY_CAPTURE_RATE,
    CaptureSettings,
    model_uri_pattern,
    read_capture,
    version_uri,
)
from infra.core.rollout import (
    KEY_CANDIDATE_MODEL_URI,
    RolloutSettings,
    read_rollout,
    version_sha256,
)
from infra.kubernetes.monitoring import KEY_POD_MONITOR, POD_MONITOR_OFF, POD_MONITORS
from infra.settings import KEY_API_KEY, KEY_MODEL_URI, Settings

KEY_CONTEXT = "modelship:kubeContext"
KEY_NAMESPACE = "modelship:namespace"
KEY_CREATE_NAMESPACE = "modelship:createNamespace"
KEY_IMAGE = "modelship:image"
KEY_REGISTRY = "modelship:registry"
KEY_REGISTRY_USERNAME = "modelship:registryUsername"
KEY_REGISTRY_PASSWORD = "modelship:registryPassword"  # noqa: S105 - a config key name
KEY_PULL_SECRET = "modelship:imagePullSecret"  # noqa: S105 - a config key name
KEY_API_KEY_SECRET = "modelship:apiKeySecret"  # noqa: S105 - a config key name
KEY_EXPOSURE = "modelship:exposure"
KEY_NODE_PORT = "modelship:nodePort"
KEY_NODE_ADDRESS = "modelship:nodeAddress"
KEY_SERVICE_ANNOTATIONS = "modelship:serviceAnnotations"
KEY_INGRESS_HOST = "modelship:ingressHost"
KEY_INGRESS_CLASS = "modelship:ingressClass"
KEY_INGRESS_TLS_SECRET = "modelship:ingressTlsSecret"  # noqa: S105 - a config key name
KEY_INGRESS_ANNOTATIONS = "modelship:ingressAnnotations"
KEY_RENDER_DIR = "modelship:renderDir"
KEY_CAPTURE_URI = "modelship:captureUri"
# This target owns no bucket: captures go to one the cluster's workloads can already write to.
CAPTURE_URI = re.compile(r"(s3|gs)://[a-z0-9][a-z0-9._-]{1,220}[a-z0-9](/[A-Za-z0-9._/-]*)?")
CAPTURE_URI_ALLOWED = (
    f"required when {KEY_CAPTURE_RATE} is above 0: the model store the captures go to, "
    "s3://BUCKET[/PREFIX] or gs://BUCKET[/PREFIX], writable by the pods' identity"
)

# Kubernetes versions the k8s target supports, and the declared objects are validated against
# (tests/infra/test_k8s_target.py, strict OpenAPI schemas from kubernetes-validate). The floor is
# set by the objects: the preStop `sleep` action is on by default from 1.30 (beta; GA in 1.34).
# The newest is the newest release as of 2026-11 (and the newest schema kubernetes-validate has).
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")

EXPOSURES = ("LoadBalancer", "NodePort", "Ingress", "ClusterIP")
NODE_PORT_RANGE = (30000, 32767)  # the API server's default --service-node-port-range

# distribution/reference grammar (what `docker pull` and the kubelet accept).
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|-+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])"
_DOMAIN = rf"{_HOST}(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
IMAGE_REFERENCE = re.compile(
    rf"(?P<name>(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)"
    rf"(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?"
)
IMAGE_ALLOWED = (
    "an image reference the cluster can pull, ideally pinned by digest: "
    "registry.example.com/team/modelship@sha256:<64 hex digits> (or name:tag)"
)
# A push target must name its registry host explicitly: Docker reads a bare `team/modelship` as
# docker.io/team/modelship and pushes to Docker Hub, where the push fails (401) or leaks the image.
REGISTRY = re.compile(rf"(?P<host>{_DOMAIN})(?:/{_PATH_COMPONENT})*")
REGISTRY_ALLOWED = (
    "a registry host with an optional path and no tag, e.g. registry.example.com/team, "
    "ghcr.io/org, localhost:5000 (the image is pushed as <registry>/modelship:<stack>)"
)
DNS_SUBDOMAIN = re.compile(
    r"(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
)
DNS_SUBDOMAIN_ALLOWED = (
    "a Kubernetes object name: lowercase letters, digits, '-' and '.', at most 253 characters"
)
# Annotation keys: an optional DNS-subdomain prefix and `/`, then a name of at most 63 characters.
ANNOTATION_KEY = re.compile(
    r"(?:[a-z0-9]([-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
)
ANNOTATIONS_ALLOWED = (
    "a mapping of annotation keys (prefix/name) to string values, e.g. "
    '{"cert-manager.io/cluster-issuer": "letsencrypt"}'
)
# This target owns no bucket either: a served or candidate version is in a store the pods'
# identity can already read (no cloud IAM here).
VERSION_URI = model_uri_pattern("(?:s3|gs)")
VERSION_URI_ALLOWED = (
    "a model version in a store the pods' identity can read: s3://BUCKET/models/NAME/SHA256/ or "
    "gs://BUCKET/models/NAME/SHA256/, as `modelship models list` prints it (unset: {unset})"
)
NODE_ADDRESS = re.compile(rf"{_HOST}")
NODE_ADDRESS_ALLOWED = "the IP address or DNS name of a node (or of a VIP in front of the nodes)"


@dataclass(frozen=True)
class IngressSettings:
    """Ingress in front of a ClusterIP Service (exposure `Ingress`)."""

    host: str
    class_name: str | None = None
    tls_secret: str | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class K8sSettings:
    """Validated settings of the k8s target."""

    context: str | None = None
    namespace: str = "modelship"
    create_namespace: bool = True
    image: str | None = None
    registry: str | None = None
    registry_username: str | None = None
    registry_password: pulumi.Output[str] | None = field(default=None, repr=False, compare=False)
    pull_secret: str | None = None
    api_key_secret: str | None = None
    exposure: str = "LoadBalancer"
    node_port: int | None = None
    node_address: str | None = None
    service_annotations: Mapping[str, str] = field(default_factory=dict)
    ingress: IngressSettings | None = None
    render_dir: str | None = None
    pod_monitor: str = POD_MONITOR_OFF
    capture: CaptureSettings = field(default_factory=CaptureSettings)
    capture_uri: str | None = None
    """The store the service writes `captures/` to, when `capture` is enabled."""
    batch: BatchSettings = field(default_factory=BatchSettings)
    """The batch transform Job template (shards, parallelism, sizes, deadline)."""
    model_uri: str | None = None
    """The version to serve instead of the image's model (`modelship:modelUri`)."""
    rollout: RolloutSettings = field(default_factory=RolloutSettings)
    """A candidate version served beside the primary."""

    @property
    def service_type(self) -> str:
        """The Service type behind the exposure mode (an Ingress fronts a ClusterIP Service)."""
        return "ClusterIP" if self.exposure == "Ingress" else self.exposure

    @property
    def pinned(self) -> bool:
        """Whether the deployed image is pinned by digest (a built image always is)."""
        return self.image is None or "@" in self.image


def parse_image(value: str) -> str:
    """An image reference (distribution/reference grammar); sha256 digests have 64 hex digits."""
    match = IMAGE_REFERENCE.fullmatch(value)
    if match is None or len(match["name"]) > 255:
        raise ValueError(value)
    digest = match["digest"]
    if digest is not None and digest.startswith("sha256:") and len(digest) != 7 + 64:
        raise ValueError(value)
    return value


def parse_registry(value: str) -> str:
    """A push target: a registry host (with a dot or port, or localhost) and an optional path."""
    match = REGISTRY.fullmatch(value.rstrip("/"))
    if match is None:
        raise ValueError(value)
    host = match["host"]
    if not ("." in host or ":" in host or host == "localhost"):
        raise ValueError(value)
    return value.rstrip("/")


def parse_annotations(value: str) -> dict[str, str]:
    """A JSON (or YAML-in-the-stack-file) mapping of annotation keys to string values."""
    try:
        document = json.loads(value)
    except json.JSONDecodeError as exc:
        raise ValueError(value) from exc
    if not isinstance(document, dict):
        raise ValueError(value)
    for key, item in document.items():
        if not isinstance(item, str) or not ANNOTATION_KEY.fullmatch(key):
            raise ValueError(value)
    return dict(document)


def read_k8s_settings(reader: ConfigReader, settings: Settings) -> K8sSettings:
    """Read and check the k8s keys; problems go to `reader`."""
    image = reader.parse(KEY_IMAGE, None, parse_image, IMAGE_ALLOWED)
    registry = reader.parse(KEY_REGISTRY, None, parse_registry, REGISTRY_ALLOWED)
    image_given = reader.raw(KEY_IMAGE) is not None
    registry_given = reader.raw(KEY_REGISTRY) is not None
    if image_given and registry_given:
        reader.problem(
            KEY_REGISTRY,
            reader.raw(KEY_REGISTRY),
            f"only one of {KEY_IMAGE} (deploy an existing image) or {KEY_REGISTRY} "
            "(build and push) can be set",
        )
    elif not image_given and not registry_given:
        reader.problem(
            KEY_IMAGE,
            None,
            f"required unless {KEY_REGISTRY} is set; {IMAGE_ALLOWED}",
        )

    username = reader.optional_string(KEY_REGISTRY_USERNAME)
    password = reader.secret(KEY_REGISTRY_PASSWORD)
    if (username is None) != (password is None):
        missing = KEY_REGISTRY_PASSWORD if password is None else KEY_REGISTRY_USERNAME
        reader.problem(
            missing,
            None,
            "registry username and password go together (or set neither to "
            "push with the machine's `docker login` credentials)",
        )
    if username is not None and not registry_given:
        reader.problem(KEY_REGISTRY_USERNAME, username, f"only used with {KEY_REGISTRY}")

    exposure = reader.choice(KEY_EXPOSURE, K8sSettings.exposure, EXPOSURES)
    node_port = reader.parse(
        KEY_NODE_PORT, None, int, f"an integer from {NODE_PORT_RANGE[0]} to {NODE_PORT_RANGE[1]}"
    )
    if node_port is not None and not NODE_PORT_RANGE[0] <= node_port <= NODE_PORT_RANGE[1]:
        reader.problem(
            KEY_NODE_PORT,
            str(node_port),
            f"an integer from {NODE_PORT_RANGE[0]} to {NODE_PORT_RANGE[1]}",
        )
        node_port = None
    node_address = reader.matching(KEY_NODE_ADDRESS, "", NODE_ADDRESS, NODE_ADDRESS_ALLOWED)
    for key, value in ((KEY_NODE_PORT, node_port), (KEY_NODE_ADDRESS, node_address or None)):
        if value is not None and exposure != "NodePort":
            reader.problem(key, str(value), f"only used with {KEY_EXPOSURE} NodePort")

    ingress = _read_ingress(reader, exposure)
    render_dir = reader.optional_string(KEY_RENDER_DIR)
    api_key_secret = _object_name(reader, KEY_API_KEY_SECRET)
    if api_key_secret is not None and settings.api_key is not None:
        reader.problem(
            KEY_API_KEY_SECRET,
            api_key_secret,
            f"only one of {KEY_API_KEY} (the key, stored in a Secret the stack creates) or "
            f"{KEY_API_KEY_SECRET} (the name of an existing Secret) can be set",
        )
    if render_dir is not None and settings.api_key is not None:
        reader.problem(
            KEY_API_KEY,
            "[secret]",
            "not with " + KEY_RENDER_DIR + ": rendered YAML would carry the key in clear text; "
            f"create the Secret with your secret manager and set {KEY_API_KEY_SECRET} to its name",
        )

    model_uri, rollout = _read_versions(reader, settings)
    capture = read_capture(reader, with_days=False)
    capture_uri = reader.matching(KEY_CAPTURE_URI, "", CAPTURE_URI, CAPTURE_URI_ALLOWED) or None
    if capture.enabled and capture_uri is None and reader.raw(KEY_CAPTURE_URI) is None:
        reader.problem(KEY_CAPTURE_URI, None, CAPTURE_URI_ALLOWED)

    return K8sSettings(
        context=reader.optional_string(KEY_CONTEXT),
        namespace=reader.matching(
            KEY_NAMESPACE, K8sSettings.namespace, DNS_LABEL, DNS_LABEL_ALLOWED
        ),
        create_namespace=reader.boolean(KEY_CREATE_NAMESPACE, K8sSettings.create_namespace),
        image=image,
        registry=registry,
        registry_username=username,
        registry_password=password,
        pull_secret=_object_name(reader, KEY_PULL_SECRET),
        api_key_secret=api_key_secret,
        exposure=exposure,
        node_port=node_port if exposure == "NodePort" else None,
        node_address=(node_address or None) if exposure == "NodePort" else None,
        service_annotations=reader.parse(
            KEY_SERVICE_ANNOTATIONS, {}, parse_annotations, ANNOTATIONS_ALLOWED
        ),
        ingress=ingress,
        render_dir=render_dir,
        pod_monitor=reader.choice(KEY_POD_MONITOR, POD_MONITOR_OFF, POD_MONITORS),
        capture=capture,
        capture_uri=capture_uri,
        batch=read_batch(reader, lifecycle=False),
        model_uri=model_uri,
        rollout=rollout,
    )


def _read_versions(reader: ConfigReader, settings: Settings) -> tuple[str | None, RolloutSettings]:
    """`model_uri` and `rollout`: the versions by their shape (nothing outside the cluster is
    called at preview; the service's start-up fetch proves a version), the candidate not the
    model served (the image's own without a `modelship:modelUri`)."""
    served = reader.matching(
        KEY_MODEL_URI, "", VERSION_URI, VERSION_URI_ALLOWED.format(unset="the image's model")
    )
    candidate = reader.matching(
        KEY_CANDIDATE_MODEL_URI,
        "",
        VERSION_URI,
        VERSION_URI_ALLOWED.format(unset="no rollout, the primary alone"),
    )
    primary = version_sha256(served) if served else settings.image.model_sha256
    rollout = read_rollout(reader, version_uri(candidate) if candidate else None, primary)
    return (version_uri(served) if served else None), rollout


def _object_name(reader: ConfigReader, key: str) -> str | None:
    value = reader.matching(key, "", DNS_SUBDOMAIN, DNS_SUBDOMAIN_ALLOWED)
    return value or None


def _read_ingress(reader: ConfigReader, exposure: str) -> IngressSettings | None:
    host = reader.matching(KEY_INGRESS_HOST, "", HOSTNAME, HOSTNAME_ALLOWED) or None
    class_name = _object_name(reader, KEY_INGRESS_CLASS)
    tls_secret = _object_name(reader, KEY_INGRESS_TLS_SECRET)
    no_annotations: dict[str, str] = {}
    annotations = reader.parse(
        KEY_INGRESS_ANNOTATIONS, no_annotations, parse_annotations, ANNOTATIONS_ALLOWED
    )
    if exposure != "Ingress":
        for key in (KEY_INGRESS_HOST, KEY_INGRESS_CLASS, KEY_INGRESS_TLS_SECRET):
            value = reader.raw(key)
            if value is not None:
                reader.problem(key, value, f"only used with {KEY_EXPOSURE} Ingress")
        if reader.raw(KEY_INGRESS_ANNOTATIONS) is not None:
            reader.problem(
                KEY_INGRESS_ANNOTATIONS,
                reader.raw(KEY_INGRESS_ANNOTATIONS),
                f"only used with {KEY_EXPOSURE} Ingress",
            )
        return None
    if host is None:
        if reader.raw(KEY_INGRESS_HOST) is None:
            reader.problem(
                KEY_INGRESS_HOST, None, f"required with {KEY_EXPOSURE} Ingress; {HOSTNAME_ALLOWED}"
            )
        return IngressSettings(host="invalid.example.com")
    return IngressSettings(
        host=host, class_name=class_name, tls_secret=tls_secret, annotations=annotations
    )
