"""modelship: deploy the model service with Pulumi, one stack per target.

`modelship:target` picks the target from `TARGETS`:
  gke      Google Kubernetes Engine (Autopilot by default): APIs, Artifact Registry, VPC, cluster,
           and the service as Deployment + LoadBalancer Service (or HTTPS Ingress) + HPA + PDB.

Every target builds the same image (`infra.image`), runs the same container description
(`infra.container`), labels everything the same way (`infra.labels`) and exports `url`, `image`.
Config is read and validated once (`infra.settings`) before any resource is declared.
"""

import sys
from pathlib import Path
from typing import Any

# Pulumi's Python host runs this file with `infra/` (not the repository root) on sys.path.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import pulumi  # noqa: E402

from infra import gke  # noqa: E402
from infra.settings import ConfigReader, read_shared  # noqa: E402
from infra.targets import Target, TargetOutputs  # noqa: E402

TARGETS: dict[str, Target[Any]] = {
    "gke": gke.TARGET,
}


def main() -> TargetOutputs:
    """Read and validate config, then declare the chosen target's resources."""
    reader = ConfigReader(pulumi.get_stack())
    settings = read_shared(reader, pulumi.get_project(), TARGETS)
    target = TARGETS.get(settings.target)
    section = target.read(reader, settings) if target is not None else None
    reader.check_unknown_keys()
    reader.raise_if_problems()
    assert target is not None  # a missing target is a problem raised above
    return target.deploy(settings, section)


main().export()
