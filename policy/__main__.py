"""The modelship policy pack, as the Pulumi CLI runs it (`pulumi preview --policy-pack policy`).

Constructing `PolicyPack` starts the gRPC server the CLI talks to and blocks, so it happens only
here; the rules live in `policy/rules.py`, which the tests import and run without the CLI.
"""

import sys
from pathlib import Path

# In the workspace `policy` is an installed package; but the CLI runs this file in the pack's own
# environment (policy/venv: pulumi and pulumi-policy only, policy/requirements.txt) with policy/
# on sys.path, so the repository root is added for `policy.rules` to import.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from pulumi_policy import EnforcementLevel, PolicyPack  # noqa: E402

from policy.rules import POLICIES  # noqa: E402

PolicyPack(name="modelship", enforcement_level=EnforcementLevel.MANDATORY, policies=POLICIES)
