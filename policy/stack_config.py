"""The policy pack's config for one stack, from its declared `modelship:environment`.

uv run python -m policy.stack_config gke > policy-config.json
pulumi preview -s gke --policy-pack policy --policy-pack-config policy-config.json
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from infra.settings import KEY_ENVIRONMENT
from infra.stack_file import read_stack_file
from policy.rules import DEFAULT_ENVIRONMENT


def declared_environment(stack: str) -> str:
    """`modelship:environment` of `Pulumi.<stack>.yaml` (development when not set)."""
    value = read_stack_file(stack).plain.get(KEY_ENVIRONMENT)
    return str(value) if value else DEFAULT_ENVIRONMENT


def policy_config(stack: str) -> dict[str, Any]:
    return {"deletion-protection-matches-environment": {"environment": declared_environment(stack)}}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m policy.stack_config", description=__doc__.split("\n")[0]
    )
    parser.add_argument("stack", help="stack name (reads Pulumi.<stack>.yaml)")
    args = parser.parse_args(argv)
    print(json.dumps(policy_config(args.stack), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
