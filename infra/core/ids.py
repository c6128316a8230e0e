"""Physical ids made from the project and stack names, one rule per cloud constraint.

Pulumi stack names may hold letters of either case, digits, `-`, `_` and `.`, and be long; the
clouds' ids accept less (a GCP service account id: 6-30 characters of `[a-z0-9-]`, starting with a
letter; an S3 bucket: no `_`, no uppercase). `make_id` turns a stack's name into an id that one
`IdRule` accepts: lowercase, every run of characters the rule does not allow (and runs of
separators) becomes one separator, and the result fits the rule's length with the `role` suffix
kept whole. When that changed the name (`gke_prod`, `Prod`, a long name), four hex digits of a
hash of the original are added, so two stacks whose names differ only in what was replaced or cut
(`gke_prod`, `gke-prod`) never get the same id. Names that already fit (`gke`, `fargate`) keep
their ids unchanged. The rules themselves live beside their cloud (`infra/targets/gke/ids.py`,
`infra/targets/fargate/ids.py`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from infra.config import ConfigReader

HASH_LENGTH = 4


@dataclass(frozen=True)
class IdRule:
    """What one cloud API accepts as an id: its characters, one separator, its length."""

    what: str
    """The API's name for it, for error messages (`GCP service account id`)."""
    allowed: str
    """A regex character class body of the characters allowed (besides the separator)."""
    max_length: int
    min_length: int = 1
    separator: str = "-"
    letter_first: bool = False
    """The id must start with a letter (else it must start with a letter or digit)."""
    end_with_separator: bool = False
    """The id may end with the separator (a prefix the provider appends a suffix to)."""

    def pattern(self) -> re.Pattern[str]:
        """The ids this rule produces (the cloud's own constraint, as a regex)."""
        sep = re.escape(self.separator)
        first = "[a-z]" if self.letter_first else f"[{self.allowed}]"
        body = f"{first}(?:[{self.allowed}]|{sep}(?=[{self.allowed}]))*"
        return re.compile(body + (f"{sep}?" if self.end_with_separator else ""))


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:HASH_LENGTH]


def _clean(rule: IdRule, text: str) -> str:
    lowered = text.lower()
    replaced = re.sub(f"[^{rule.allowed}]+", rule.separator, lowered)
    return replaced.strip(rule.separator)


def make_id(rule: IdRule, *parts: str, role: str = "") -> str:
    """An id that `rule` accepts, from `parts` (project, stack) joined by the separator, and a
    fixed `role` suffix (`nodes`, `models`) that is never cut."""
    sep = rule.separator
    original = sep.join(parts)
    base = sep.join(_clean(rule, part) for part in parts if _clean(rule, part))
    suffix = f"{sep}{_clean(rule, role)}" if role else ""
    if rule.end_with_separator:
        suffix += sep
    room = rule.max_length - len(suffix)
    changed = base != original or len(base) > room
    if rule.letter_first and not base[:1].isalpha():
        base = f"id{sep}{base}"
        changed = True
    if changed or len(base) + len(suffix) < rule.min_length:
        tag = _short_hash(original)
        base = base[: room - len(tag) - len(sep)].rstrip(sep) + sep + tag
    made = base + suffix
    if not rule.pattern().fullmatch(made) or not rule.min_length <= len(made) <= rule.max_length:
        raise ValueError(f"cannot make a {rule.what} from {original!r} (made {made!r})")
    return made


# --------------------------------------------------------------------------- auto-names

AUTO_NAME_SUFFIX = 8
"""What Pulumi's auto-naming adds to a logical name: `-` and 7 random characters."""
PROJECT_NAME_KEY = "name (Pulumi.yaml)"
"""Where the project name, the prefix of every logical name, is set: not a config key."""


@dataclass(frozen=True)
class AutoNameLimit:
    """A resource the stack leaves to Pulumi's auto-naming although its cloud caps the name's
    length: `<project><role>-XXXXXXX` must fit, or the provider refuses the name at `up`."""

    what: str
    role: str
    """The logical name after the project name (`-lb-alb`)."""
    max_length: int

    def longest_project(self) -> int:
        """The longest project name whose auto-name still fits."""
        return self.max_length - AUTO_NAME_SUFFIX - len(self.role)


def check_project_name(reader: ConfigReader, project: str, limits: Iterable[AutoNameLimit]) -> None:
    """A problem naming the project name if an auto-name made from it would be too long."""
    too_long = [limit for limit in limits if len(project) > limit.longest_project()]
    if too_long:
        tightest = min(too_long, key=AutoNameLimit.longest_project)
        reader.problem(
            PROJECT_NAME_KEY,
            project,
            f"at most {tightest.longest_project()} characters: the {tightest.what} is named "
            f"'{project}{tightest.role}-' plus 7 random characters, and may have at most "
            f"{tightest.max_length}; shorten the project's name",
        )
