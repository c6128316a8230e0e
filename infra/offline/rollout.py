"""Record a rollout's verdict in a stack file, so git stays the truth of what is deployed.

    uv run python -m infra.offline.rollout candidate gke   # the declared candidate, or nothing
    uv run python -m infra.offline.rollout promote gke     # modelUri := the candidate; clear it
    uv run python -m infra.offline.rollout abort gke       # clear the candidate

`promote` sets `modelship:modelUri` to `modelship:candidateModelUri` and removes the two candidate
keys; `abort` only removes them. The file is edited line by line, so its comments and key order
stay as the team wrote them, and the result is parsed again and compared with the intended
config before it is written: an edit that would change anything else is refused. The deploy
workflow runs this after `modelship rollout wait`, then commits the file (docs/rollout.md).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from infra.core.rollout import KEY_CANDIDATE_MODEL_URI, KEY_CANDIDATE_TRAFFIC
from infra.settings import KEY_MODEL_URI
from infra.stack_file import PROJECT, stack_file_path

CANDIDATE_KEYS = (KEY_CANDIDATE_MODEL_URI, KEY_CANDIDATE_TRAFFIC)


class RolloutFileError(Exception):
    """A stack file this command cannot edit safely, with the reason."""


def _config(text: str, name: str) -> dict[str, Any]:
    """The `config` mapping, keys fully qualified (a stack file may omit the project prefix)."""
    try:
        document = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise RolloutFileError(f"{name} is not valid YAML: {exc}") from exc
    config = document.get("config") if isinstance(document, dict) else None
    if not isinstance(config, dict):
        raise RolloutFileError(f"{name} has no `config` mapping")
    return {key if ":" in key else f"{PROJECT}:{key}": value for key, value in config.items()}


def _key_line(key: str) -> re.Pattern[str]:
    """The line that sets `key` directly under `config:`, spelled with or without the prefix."""
    name = key.split(":", 1)[1]
    return re.compile(rf"^(?P<indent>[ \t]+)(?:{PROJECT}:)?{re.escape(name)}[ \t]*:")


def candidate(text: str, name: str = "the stack file") -> str | None:
    """The candidate the stack file declares, or None."""
    value = _config(text, name).get(KEY_CANDIDATE_MODEL_URI)
    return None if value in (None, "") else str(value)


def record(text: str, verdict: str, name: str = "the stack file") -> str:
    """The stack file after `verdict` (`promote` or `abort`) of its declared candidate."""
    before = _config(text, name)
    chosen = candidate(text, name)
    if chosen is None:
        raise RolloutFileError(
            f"{name} declares no {KEY_CANDIDATE_MODEL_URI}: nothing to {verdict}"
        )
    expected = {k: v for k, v in before.items() if k not in CANDIDATE_KEYS}
    if verdict == "promote":
        expected[KEY_MODEL_URI] = chosen

    lines = text.splitlines(keepends=True)
    served = _key_line(KEY_MODEL_URI)
    # The served version is written on the modelUri line, or where the candidate was declared.
    anchor = served if any(served.match(line) for line in lines) else None
    anchor = anchor or _key_line(KEY_CANDIDATE_MODEL_URI)
    dropped = [_key_line(key) for key in CANDIDATE_KEYS]
    out: list[str] = []
    for line in lines:
        match = anchor.match(line)
        if verdict == "promote" and match is not None:
            out.append(f"{match['indent']}{KEY_MODEL_URI}: {chosen}\n")
        elif not any(pattern.match(line) for pattern in dropped):
            out.append(line)
    result = "".join(out)
    try:
        after = _config(result, name)
    except RolloutFileError as exc:
        raise RolloutFileError(
            f"{name}: a line-by-line edit would break the file ({exc}; a value over several "
            "lines?): edit the file by hand"
        ) from exc
    if after != expected:
        changed = sorted(
            k for k in after.keys() | expected.keys() if after.get(k) != expected.get(k)
        )
        raise RolloutFileError(
            f"{name}: a line-by-line edit would change {', '.join(changed)} as well (a value "
            "over several lines, or a key set twice?): edit the file by hand"
        )
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m infra.offline.rollout",
        description="Read or record a rollout's verdict in Pulumi.<stack>.yaml: `candidate` "
        "prints the declared candidate (nothing when none); `promote` makes it modelship:modelUri "
        "and clears the candidate keys; `abort` clears them. Comments and key order are kept.",
    )
    parser.add_argument("action", choices=("candidate", "promote", "abort"))
    parser.add_argument("stack", help="the stack whose Pulumi.<stack>.yaml is read or edited")
    parser.add_argument(
        "--file", type=Path, help="the stack file to use instead of Pulumi.<stack>.yaml"
    )
    args = parser.parse_args(argv)
    path: Path = args.file or stack_file_path(args.stack)
    try:
        text = path.read_text()
        if args.action == "candidate":
            print(candidate(text, path.name) or "")
            return 0
        path.write_text(record(text, args.action, path.name))
    except (OSError, RolloutFileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{path.name}: {args.action} recorded")
    return 0


if __name__ == "__main__":
    sys.exit(main())
