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
from collections.abc import Mapping
from pathlib import Path

from docker.utils.build import exclude_paths

TAG_PREFIX = "src-"
TAG_HEX_LENGTH = 16
DOCKERIGNORE = ".dockerignore"


def dockerignore_patterns(root: Path) -> list[str]:
    """The patterns of `root/.dockerignore` as docker-py reads them: comments and blank lines
    skipped, in file order."""
    ignore = root / DOCKERIGNORE
    if not ignore.exists():
        return []
    lines = (line.strip() for line in ignore.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def context_files(root: Path, dockerfile: str = "Dockerfile") -> list[Path]:
    """The files of the build context that `.dockerignore` keeps (docker-py's matcher, the rules
    of the Docker CLI), in the order of a walk that lists a directory's files before its folders.

    docker-py always keeps `dockerfile` (its path relative to `root`) and `.dockerignore`: the CLI
    sends both even when ignored, for the builder to read. Neither is a file the build can copy,
    so both are left out: `content_tag` hashes the Dockerfile on its own, and the ignore file's
    effect is the list itself.
    """
    kept: set[str] = exclude_paths(str(root), dockerignore_patterns(root), dockerfile=dockerfile)
    kept -= {dockerfile, DOCKERIGNORE}
    files = [Path(relative) for relative in kept if (root / relative).is_file()]
    return [root / path for path in sorted(files, key=_walk_order)]


def _walk_order(path: Path) -> tuple[tuple[int, str], ...]:
    """Folders sort after the files beside them, as `os.walk` with sorted names visits them."""
    *folders, name = path.parts
    return (*((1, folder) for folder in folders), (0, name))


def content_tag(root: Path, dockerfile: Path, settings: Mapping[str, object]) -> str:
    """`src-<16 hex>` from the context files' paths and bytes, the Dockerfile and `settings`."""
    root = root.resolve()
    digest = hashlib.sha256()
    for path in context_files(root, dockerfile.resolve().relative_to(root).as_posix()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    digest.update(b"dockerfile\0" + dockerfile.read_bytes())
    digest.update(b"settings\0" + json.dumps(settings, sort_keys=True).encode())
    return TAG_PREFIX + digest.hexdigest()[:TAG_HEX_LENGTH]
