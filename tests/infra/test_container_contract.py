"""The container contract is written once: `infra/core/container.py`.

The `MODELSHIP_*` names every target sets come from the service's own `Settings` fields, and no
other module of the program spells one out or writes its own health-check command: a copy that
reappears, or a setting renamed in `service/` but not here, fails these tests.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from infra.core.container import (
    API_KEY_ENV,
    API_KEY_FILE_ENV,
    container_spec,
    service_env,
)
from infra.stack_file import PROGRAM_DIR
from modelship.contracts.settings import Settings as ServiceSettings
from tests.infra.plan import PLANS_DIR
from tests.infra.test_core import settings

# The batch worker's own variables (read by `modelship predict`'s shell line, not by Settings).
NOT_SETTINGS = {"MODELSHIP_BATCH_INPUT", "MODELSHIP_BATCH_OUTPUT"}


def test_service_env_names_a_service_setting() -> None:
    assert service_env("log_level") == "MODELSHIP_LOG_LEVEL"
    assert (API_KEY_ENV, API_KEY_FILE_ENV) == ("MODELSHIP_API_KEY", "MODELSHIP_API_KEY_FILE")
    with pytest.raises(KeyError, match="no field 'log_levels'"):
        service_env("log_levels")


def _settings_env_names() -> set[str]:
    prefix = ServiceSettings.model_config["env_prefix"]
    return {f"{prefix}{name.upper()}" for name in ServiceSettings.model_fields}


@pytest.mark.parametrize("plan", sorted(PLANS_DIR.glob("*.txt")), ids=lambda p: p.stem)
def test_every_modelship_variable_a_stack_sets_is_a_service_setting(plan: Path) -> None:
    """Read from the committed plans (what each stack declares), so no stack runs again."""
    used = set(re.findall(r"MODELSHIP_[A-Z_]+", plan.read_text())) - NOT_SETTINGS
    assert "MODELSHIP_PORT" in used or plan.stem == "local", sorted(used)
    assert used <= _settings_env_names(), used - _settings_env_names()


def _program_files() -> list[Path]:
    return sorted(PROGRAM_DIR.rglob("*.py"))


def _string_literals(path: Path) -> list[str]:
    """The string constants of a module's code (docstrings and comments excluded)."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    ]


def test_no_module_but_the_contract_spells_a_service_variable() -> None:
    """`MODELSHIP_<SETTING>` literals belong in `service_env` calls, not in copies."""
    contract = PROGRAM_DIR / "core" / "container.py"
    settings = _settings_env_names()
    copies = {
        f"{path.relative_to(PROGRAM_DIR)}: {name}"
        for path in _program_files()
        if path != contract
        for literal in _string_literals(path)
        for name in re.findall(r"MODELSHIP_[A-Z_]+", literal)
        if name in settings
    }
    assert not copies


def test_the_exec_health_check_is_written_once() -> None:
    writers = [p for p in _program_files() if "urllib.request.urlopen" in p.read_text()]
    assert writers == [PROGRAM_DIR / "core" / "container.py"]


def test_a_key_handed_over_as_a_variable_drops_the_file_path() -> None:
    spec = container_spec(settings(), api_key_file=True)
    assert dict(spec.env)[API_KEY_FILE_ENV] == "/var/run/secrets/modelship/api-key"
    assert dict(spec.env_with_key_as_variable) == {
        key: value for key, value in spec.env if key != API_KEY_FILE_ENV
    }
