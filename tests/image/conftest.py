"""The images, built once per test session from service/Dockerfile (on the stand-in base) and
checked by the image checker before any test runs them.

Every test here is slow and in the xdist group `image`: one worker builds and runs the images
while the other runs the rest of the suite (`scripts/check.sh` passes `--dist loadgroup`).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest

from tests.image.buildah import build_image, missing_tools, remove_image, standin_base
from tests.image.checker import check_image
from tests.tools import missing_message

SESSION = secrets.token_hex(4)  # parallel sessions on one machine must not share tags
NOT_ROOT = (
    "the image tests need root (buildah's chroot isolation and its mounts):"
    " run them, or bash scripts/check.sh, as root"
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.parent.name == "image":
            item.add_marker(pytest.mark.slow)
            item.add_marker(pytest.mark.xdist_group("image"))


@pytest.fixture(scope="session")
def base_image() -> str:
    missing = missing_tools()
    if missing:
        pytest.fail(missing_message(missing), pytrace=False)
    if os.geteuid() != 0:
        pytest.fail(NOT_ROOT, pytrace=False)
    return standin_base()


@pytest.fixture(scope="session")
def service_image(base_image: str) -> Iterator[str]:
    tag = f"localhost/modelship-test:service-{SESSION}"
    build_image(tag, base=base_image)
    check_image(tag, "service")
    yield tag
    remove_image(tag)


@pytest.fixture(scope="session")
def training_image(base_image: str) -> Iterator[str]:
    tag = f"localhost/modelship-test:training-{SESSION}"
    build_image(tag, base=base_image, target="training")
    check_image(tag, "training")
    yield tag
    remove_image(tag)
