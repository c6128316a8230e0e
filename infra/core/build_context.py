"""A tag derived from what goes into the image: the build context (per `.dockerignore`), the
Dockerfile and the build settings.

The fargate stack tags its images with it, so a tag in ECR names the sources it was built from.
It is not the builder's own rebuild decision: pulumi-docker-build also hashes file modes, so the
same sources checked out with another umask rebuild and push the same tag again. That is why the
repository's tags are mutable (infra/targets/fargate/registry.py); targets deploy the digest
(`ServiceImage.ref`), never the tag.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

TAG_PREFIX = "src-"
TAG_HEX_LENGTH = 16


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """One `.dockerignore` pattern (Go filepath.Match syntax plus `**`) as a regex on paths."""
    out = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):  # `**/` matches zero or more directories
                i += 1
                out.append("(?:.*/)?")
            else:
                out.append(".*")
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = pattern.find("]", i)
            if end == -1:
                out.append(re.escape(char))
            else:
                out.append("[" + pattern[i + 1 : end].replace("!", "^", 1) + "]")
                i = end
        elif char == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(char))
        i += 1
    return re.compile("".join(out))


Rule = tuple[bool, re.Pattern[str], str]


def read_dockerignore(text: str) -> list[Rule]:
    """(exclude?, regex, pattern) per line, in file order; comments and blank lines skipped."""
    rules = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        include = stripped.startswith("!")
        pattern = stripped[1:].strip() if include else stripped
        pattern = os.path.normpath(pattern).lstrip("/").removeprefix("./")
        rules.append((not include, _pattern_regex(pattern), pattern))
    return rules


def is_excluded(path: str, rules: Sequence[Rule]) -> bool:
    """Docker's rule: the last pattern that matches the path or one of its parents decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for exclude, regex, _ in rules:
        if any(regex.fullmatch(candidate) for candidate in candidates):
            excluded = exclude
    return excluded


def context_files(root: Path) -> Iterator[Path]:
    """The files the build context sends, in a stable order."""
    ignore = root / ".dockerignore"
    rules = read_dockerignore(ignore.read_text()) if ignore.exists() else []
    for directory, subdirs, files in os.walk(root):
        base = Path(directory).relative_to(root).as_posix()
        # Skip excluded directories no `!` pattern can reach into (.venv, .git, ...).
        subdirs[:] = sorted(
            d
            for d in subdirs
            if not is_excluded(_join(base, d), rules) or _may_reinclude(_join(base, d), rules)
        )
        for name in sorted(files):
            path = Path(directory) / name
            relative = path.relative_to(root).as_posix()
            if not is_excluded(relative, rules):
                yield path


def _join(base: str, name: str) -> str:
    return name if base == "." else f"{base}/{name}"


def _may_reinclude(directory: str, rules: Sequence[Rule]) -> bool:
    for exclude, _, pattern in rules:
        if exclude:
            continue
        head = pattern.split("/", 1)[0]
        if pattern.startswith(directory + "/") or any(c in head for c in "*?["):
            return True
    return False


def content_tag(root: Path, dockerfile: Path, settings: Mapping[str, object]) -> str:
    """`src-<16 hex>` from the context files' paths and bytes, the Dockerfile and `settings`."""
    root = root.resolve()
    digest = hashlib.sha256()
    for path in context_files(root):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    digest.update(b"dockerfile\0" + dockerfile.read_bytes())
    digest.update(b"settings\0" + json.dumps(settings, sort_keys=True).encode())
    return TAG_PREFIX + digest.hexdigest()[:TAG_HEX_LENGTH]
