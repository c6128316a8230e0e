"""The image checker refuses broken variants of the service image, saying what broke: the same
check every built image passes before the other image tests run it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.image.buildah import build_image, remove_image
from tests.image.checker import ImageDefect, check_image
from tests.image.conftest import SESSION

BROKEN = Path(__file__).with_name("broken.Dockerfile")


@pytest.mark.parametrize(
    ("variant", "message"),
    [
        (
            "old-venv-path",
            "/app/.venv/bin/modelship starts with #!/src/.venv/bin/python, but "
            "/src/.venv/bin/python does not exist in the image",
        ),
        ("wrong-entrypoint", "the entry point 'modelship-server' is not an executable file"),
        ("missing-model", "the model file /app/model/model.onnx is missing from the image"),
    ],
)
def test_the_checker_refuses_a_broken_image(
    service_image: str, base_image: str, variant: str, message: str
) -> None:
    tag = f"localhost/modelship-test:broken-{variant}-{SESSION}"
    build_image(
        tag,
        base=base_image,
        dockerfile=BROKEN,
        target=variant,
        build_args={"SERVICE_IMAGE": service_image},
    )
    try:
        with pytest.raises(ImageDefect) as refused:
            check_image(tag, "service")
        assert message in str(refused.value)
    finally:
        remove_image(tag)
