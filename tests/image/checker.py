"""The image checker: what must hold for an image of service/Dockerfile to start anywhere.

Every image test builds an image and calls `check_image` before it runs it, and the broken
variants (tests/image/broken.Dockerfile) are refused by the same function, so a defect of the
kind that once shipped (console scripts whose shebang named the build stage's `/src/.venv`)
fails the suite with a message that says what broke:

- the entry point resolves on the image's PATH to an executable file in the image;
- every script on the image's PATH names an interpreter that exists in the image (shebangs are
  resolved inside the image's root, symlinks included), and no link in the application's
  environment dangles;
- the image runs as the unprivileged user the platforms expect;
- the service image carries its model (card and ONNX file under `MODELSHIP_ARTIFACT`), exposes
  its port and has a health check;
- the entry point starts: `ENTRYPOINT --version` exits 0 as the image's user on a read-only root.
"""

from __future__ import annotations

import stat
from pathlib import Path, PurePosixPath
from typing import Literal

from tests.image.buildah import ImageConfig, image_config, mounted
from tests.image.runtime import RunSpec, run_container

Role = Literal["service", "training"]
EXPECTED_USER = "10001:10001"
SERVICE_PORT = 8080
APP_DIR = "/app"
MAX_SYMLINKS = 40


class ImageDefect(AssertionError):
    """The image would not start (or not as the platforms start it); the message says why."""


def resolve_inside(root: Path, path: str) -> Path | None:
    """`path` as the image sees it: symlinks followed within `root`; None if it does not exist."""
    parts = list(PurePosixPath(path).parts[1:])
    current = root
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            current = current.parent if current != root else root
            continue
        candidate = current / part
        if candidate.is_symlink():
            hops += 1
            if hops > MAX_SYMLINKS:
                return None
            target = PurePosixPath(str(candidate.readlink()))
            parts = list(target.parts[1:] if target.is_absolute() else target.parts) + parts
            current = root if target.is_absolute() else current
            continue
        if not candidate.exists():
            return None
        current = candidate
    return current


def _executable(path: Path | None) -> bool:
    return path is not None and path.is_file() and bool(path.stat().st_mode & 0o111)


def _which(root: Path, name: str, env_path: str) -> tuple[str, Path] | None:
    if "/" in name:
        found = resolve_inside(root, name)
        return (name, found) if found is not None and _executable(found) else None
    for directory in env_path.split(":"):
        candidate = f"{directory.rstrip('/')}/{name}"
        found = resolve_inside(root, candidate)
        if _executable(found):
            assert found is not None
            return candidate, found
    return None


def _shebang(path: Path) -> list[str] | None:
    with path.open("rb") as file:
        head = file.read(256)
    if not head.startswith(b"#!"):
        return None
    return head[2:].split(b"\n", 1)[0].decode(errors="replace").split()


def _interpreter_problem(root: Path, script: str, found: Path, env_path: str) -> str | None:
    words = _shebang(found)
    if words is None:
        return None
    if not words:
        return f"{script} has an empty shebang line"
    interpreter = words[0]
    if not _executable(resolve_inside(root, interpreter)):
        return (
            f"{script} starts with #!{' '.join(words)}, but {interpreter} does not exist in the "
            "image (a path of the build stage?)"
        )
    if (
        PurePosixPath(interpreter).name == "env"
        and len(words) > 1
        and _which(root, words[1], env_path) is None
    ):
        return f"{script} runs `{words[1]}` through env, which is not on the image's PATH"
    return None


def _path_problems(root: Path, config: ImageConfig) -> list[str]:
    env_path = config.env.get("PATH", "")
    problems = []
    for directory in dict.fromkeys(env_path.split(":")):
        real = resolve_inside(root, directory) if directory.startswith("/") else None
        if real is None or not real.is_dir():
            continue
        for entry in sorted(real.iterdir()):
            script = f"{directory.rstrip('/')}/{entry.name}"
            found = resolve_inside(root, script)
            if found is None:
                if directory.startswith(APP_DIR):
                    problems.append(f"{script} is a link to {entry.readlink()}, not in the image")
                continue
            if not found.is_file() or not found.stat().st_mode & 0o111:
                continue
            problem = _interpreter_problem(root, script, found, env_path)
            if problem is not None:
                problems.append(problem)
    return problems


def _entrypoint_problems(root: Path, config: ImageConfig) -> list[str]:
    if not config.entrypoint:
        return ["the image has no ENTRYPOINT"]
    program = config.entrypoint[0]
    if _which(root, program, config.env.get("PATH", "")) is None:
        return [
            f"the entry point {program!r} is not an executable file on the image's PATH "
            f"({config.env.get('PATH', '(no PATH)')})"
        ]
    return []


def _service_problems(root: Path, config: ImageConfig) -> list[str]:
    problems = []
    artifact = config.env.get("MODELSHIP_ARTIFACT")
    if artifact is None:
        problems.append("MODELSHIP_ARTIFACT is not set in the image")
    else:
        for name in ("model-card.json", "model.onnx"):
            found = resolve_inside(root, f"{artifact}/{name}")
            if found is None or not found.is_file():
                problems.append(f"the model file {artifact}/{name} is missing from the image")
            elif not found.stat().st_mode & stat.S_IROTH:
                problems.append(f"{artifact}/{name} is not readable by the service's user")
    if SERVICE_PORT not in config.exposed_ports:
        problems.append(f"the image does not EXPOSE {SERVICE_PORT}")
    if config.healthcheck is None:
        problems.append("the image has no HEALTHCHECK")
    return problems


def _start_problem(image: str) -> str | None:
    """The entry point, started as every platform starts it (read-only root, image's user)."""
    spec = RunSpec(command=("--version",), read_only_root=True, tmpfs={"/tmp": "size=16m"})
    with run_container(image, spec) as container:
        code = container.wait(timeout=120)
        if code != 0:
            return f"`{' '.join(spec.argv(container.config))}` exits {code}: {container.logs()}"
    return None


def check_image(image: str, role: Role) -> ImageConfig:
    """Raise `ImageDefect` listing every problem found in `image`; return its config if none."""
    config = image_config(image)
    with mounted(image) as root:
        problems = _entrypoint_problems(root, config) + _path_problems(root, config)
        if config.user != EXPECTED_USER:
            problems.append(f"the image runs as {config.user or 'root'!r}, not {EXPECTED_USER}")
        if role == "service":
            problems += _service_problems(root, config)
    if not problems:
        started = _start_problem(image)
        problems += [started] if started else []
    if problems:
        raise ImageDefect(f"{role} image {image} is broken:\n- " + "\n- ".join(problems))
    return config
