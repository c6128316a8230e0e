"""The local stack's model store: a host directory, the version it serves, the training run.

Real stores, made by publishing the session's fixture models with `modelship.model.store.publish`
(what `modelship train --output file://…` does), so the config checks meet what users have on
disk. The `train_command` output is parsed with shlex and its arguments with the real CLI parser.
"""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path
from typing import Any

import pytest

from infra.config import ConfigError
from infra.core.build_context import context_files
from infra.core.image import TRAINING_IMAGE_NAME
from infra.settings import KEY_MEMORY, KEY_MODEL_URI, KEY_WORKERS
from infra.targets.local.config import KEY_MODEL_STORE_DIR
from modelship import cli
from modelship.model import artifact, store
from policy.stack_config import declared_environment
from tests.infra import plan
from tests.infra.harness import REPO_ROOT, StackRun, run_stack
from tests.policy.evaluate import evaluate, resources_of

from .test_local import BUILD, CONTAINER, container, env


@pytest.fixture(scope="module")
def store_dir(
    tmp_path_factory: pytest.TempPathFactory,
    regression_artifact: Path,
    classification_artifact: Path,
) -> Path:
    """A store with two published versions (insurance, iris), as training leaves it."""
    root = tmp_path_factory.mktemp("local-store") / "model-store"
    for directory in (regression_artifact, classification_artifact):
        store.publish(directory, f"file://{root}")
    return root.resolve()


def version_of(artifact_dir: Path, root: Path) -> str:
    """The version path `modelship train --output file://<root>` prints for this artifact."""
    card = artifact.load(artifact_dir).card
    return f"{root}/models/{card.name}/{card.artifact.onnx_sha256}/"


@pytest.fixture(scope="module")
def insurance(store_dir: Path, regression_artifact: Path) -> str:
    return version_of(regression_artifact, store_dir)


@pytest.fixture(scope="module")
def iris(store_dir: Path, classification_artifact: Path) -> str:
    return version_of(classification_artifact, store_dir)


def serving(root: Path, version: str | None = None, **more: object) -> StackRun:
    overrides: dict[str, object] = {KEY_MODEL_STORE_DIR: str(root), **more}
    if version is not None:
        overrides[KEY_MODEL_URI] = version
    return run_stack("local", overrides)


@pytest.fixture(scope="module")
def insurance_run(store_dir: Path, insurance: str) -> StackRun:
    return serving(store_dir, insurance)


def train_tokens(run: StackRun) -> list[str]:
    return shlex.split(run.outputs["train_command"])


def option(tokens: list[str], name: str) -> list[str]:
    """Every value given to `name` (`-v a -v b` → [a, b])."""
    return [tokens[i + 1] for i, token in enumerate(tokens[:-1]) if token == name]


def training_build(run: StackRun) -> dict[str, Any]:
    (build,) = [r for r in run.of_type(BUILD) if r.inputs.get("target") == "training"]
    return dict(build.inputs)


# --------------------------------------------------------------------------- default stack


def test_without_a_version_the_image_model_is_served_and_nothing_is_mounted() -> None:
    run = run_stack("local")
    assert "mounts" not in container(run)
    assert "MODELSHIP_MODEL_URI" not in env(run)
    assert run.outputs["model_store"] == str((REPO_ROOT / "model-store").resolve())


def test_training_image_is_built_from_the_training_stage_and_loaded_not_pushed() -> None:
    run = run_stack("local")
    build = training_build(run)
    assert build["target"] == "training"
    assert (build["push"], build["load"]) == (False, True)
    assert build["tags"] == [f"{TRAINING_IMAGE_NAME}:local"]
    assert "registries" not in build
    assert run.outputs["training_image_tag"] == f"{TRAINING_IMAGE_NAME}:local"
    # The serving image is unchanged: its own stage (the last one), its own tag.
    (serving_build,) = [r for r in run.of_type(BUILD) if "target" not in r.inputs]
    assert serving_build.inputs["tags"] == ["modelship:local"]


def test_the_plan_shows_the_store_without_this_checkout_s_path() -> None:
    text = plan.render(plan.run_for_plan("local"))
    assert str(REPO_ROOT) not in text
    assert 'model_store = "<repo>/model-store"' in text


def test_the_store_stays_out_of_the_image_build_context(tmp_path: Path) -> None:
    shutil.copy(REPO_ROOT / ".dockerignore", tmp_path / ".dockerignore")
    for name in ("model-store/models/m/abc/model.onnx", "model-store/data/x.csv", "uv.lock"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    sent = [p.relative_to(tmp_path).as_posix() for p in context_files(tmp_path)]
    assert sent == ["uv.lock"]  # new models or data never rebuild an image
    assert "/model-store/" in (REPO_ROOT / ".gitignore").read_text().splitlines()


# --------------------------------------------------------------------------- train_command


def test_train_command_runs_the_loaded_training_image_on_the_store(store_dir: Path) -> None:
    run = serving(store_dir)
    command = run.outputs["train_command"]
    tokens = shlex.split(command)
    assert tokens[:3] == ["docker", "run", "--rm"]
    assert '--user "$(id -u):$(id -g)"' in command  # expanded by the user's shell
    assert option(tokens, "--user") == ["$(id -u):$(id -g)"]
    assert option(tokens, "--network") == ["none"]
    assert (option(tokens, "--cpus"), option(tokens, "--memory")) == (["1"], ["2048m"])
    # data/ read-only, models/ writable, each at its host path: the printed version is the
    # value modelship:modelUri takes.
    assert option(tokens, "-v") == [
        f"{store_dir}/data:{store_dir}/data:ro",
        f"{store_dir}/models:{store_dir}/models",
    ]
    image_at = tokens.index(training_build(run)["tags"][0])
    assert tokens[image_at] == run.outputs["training_image_tag"]
    # Everything after the image is the entrypoint's (`modelship`) arguments: the real parser.
    args = cli._parser().parse_args(tokens[image_at + 1 :])
    assert args.command == "train"
    assert args.data == f"{store_dir}/data/insurance.csv"
    assert args.target == "charges"
    assert args.output == f"file://{store_dir}"
    assert store.is_store_uri(args.output)
    assert store.parse(args.output).bucket == str(store_dir)


def test_train_command_follows_the_training_keys_and_quotes_paths(tmp_path: Path) -> None:
    root = tmp_path / "my models"  # a space: the command must still be one argument per path
    run = serving(
        root,
        **{
            "modelship:trainingData": "data/2026/claims.csv",
            "modelship:trainingTarget": "total cost",
            "modelship:trainingCpu": "2",
            "modelship:trainingMemory": "4Gi",
            "modelship:trainingTimeBudgetSeconds": "7200",
        },
    )
    tokens = train_tokens(run)
    assert option(tokens, "--time-budget") == ["7200s"]
    assert (option(tokens, "--cpus"), option(tokens, "--memory")) == (["2"], ["4096m"])
    assert option(tokens, "--data") == [f"{root}/data/2026/claims.csv"]
    assert option(tokens, "--target") == ["total cost"]
    assert option(tokens, "--output") == [f"file://{root}"]
    assert option(tokens, "-v")[0] == f"{root}/data:{root}/data:ro"


def test_relative_store_dirs_are_under_the_repository_not_the_working_directory() -> None:
    run = run_stack("local", {KEY_MODEL_STORE_DIR: "stores/team"})
    # The harness runs the program in infra/, as Pulumi does.
    assert run.outputs["model_store"] == str((REPO_ROOT / "stores" / "team").resolve())


# --------------------------------------------------------------------------- serving a version


def test_a_version_is_mounted_read_only_and_named_in_the_environment(
    insurance_run: StackRun, insurance: str
) -> None:
    relative = insurance.removeprefix(f"{Path(insurance).parents[2]}/")
    assert relative.startswith("models/") and relative.endswith("/")
    assert container(insurance_run)["mounts"] == [
        {
            "type": "bind",
            "source": insurance.rstrip("/"),
            "target": f"/store/{relative}".rstrip("/"),
            "readOnly": True,
        }
    ]
    # The container sees that one version directory and nothing else of the store.
    assert env(insurance_run)["MODELSHIP_MODEL_URI"] == f"/store/{relative}"


def test_the_container_stays_read_only_and_hardened_with_a_version(insurance_run: StackRun) -> None:
    c = container(insurance_run)
    assert c["readOnly"] is True
    assert c["user"] == "10001:10001"
    assert c["capabilities"] == {"drops": ["ALL"]}
    outcome = evaluate(resources_of(insurance_run), declared_environment("local"))
    assert outcome.mandatory == []


def test_relative_and_absolute_spellings_are_the_same_deployment(
    store_dir: Path, insurance: str, insurance_run: StackRun
) -> None:
    relative = insurance.removeprefix(f"{store_dir}/").rstrip("/")  # also without the slash
    assert container(serving(store_dir, relative)) == container(insurance_run)
    assert container(serving(store_dir, f"file://{insurance}")) == container(insurance_run)


def test_a_new_version_replaces_the_container_and_not_the_image(
    store_dir: Path, iris: str, insurance_run: StackRun
) -> None:
    other = serving(store_dir, iris)
    before, after = insurance_run.one(CONTAINER), other.one(CONTAINER)
    assert before.urn == after.urn  # the same resource, changed...
    changed = {
        k
        for k in before.inputs.keys() | after.inputs.keys()
        if before.inputs.get(k) != after.inputs.get(k)
    }
    assert changed == {"envs", "mounts"}  # ...in properties Docker cannot update in place
    assert env(other)["MODELSHIP_MODEL_URI"].startswith("/store/models/iris-species/")
    # Deleted first: the replacement publishes the same host port (pulumi-docker#1356).
    assert after.delete_before_replace is True
    # The images are untouched: rolling out a model is not a rebuild.
    assert {r.name: r.inputs for r in insurance_run.of_type(BUILD)} == {
        r.name: r.inputs for r in other.of_type(BUILD)
    }
    assert insurance_run.outputs["image"] == other.outputs["image"]


def test_any_container_change_deletes_before_it_replaces() -> None:
    assert run_stack("local").one(CONTAINER).delete_before_replace is True


def test_preview_checks_the_version_and_needs_no_docker(store_dir: Path, insurance: str) -> None:
    preview = run_stack(
        "local", {KEY_MODEL_STORE_DIR: str(store_dir), KEY_MODEL_URI: insurance}, preview=True
    )
    assert env(preview)["MODELSHIP_MODEL_URI"].startswith("/store/models/")
    assert preview.outputs["train_command"].startswith("docker run --rm")


# --------------------------------------------------------------------------- config errors


def config_error(root: Path, value: str) -> str:
    with pytest.raises(ConfigError) as info:
        serving(root, value)
    return str(info.value)


@pytest.fixture
def own_store(store_dir: Path, tmp_path: Path) -> Path:
    """A copy of the store that a test may break."""
    root = tmp_path / "model-store"
    shutil.copytree(store_dir, root)
    return root.resolve()


def test_a_version_that_does_not_fit_the_memory_is_refused(
    store_dir: Path, insurance: str, regression_artifact: Path
) -> None:
    footprint = artifact.load(regression_artifact).card.footprint
    assert footprint is not None
    with pytest.raises(ConfigError) as info:
        serving(store_dir, insurance, **{KEY_MEMORY: "64Mi", KEY_WORKERS: "2"})
    message = str(info.value)
    needed = footprint.serving_rss_mb * 2
    assert f"{KEY_MEMORY} = '64Mi': {KEY_MEMORY} (64Mi) is too small for model insurance" in message
    assert f"2 worker(s) x {footprint.serving_rss_mb:.0f} MB measured per worker" in message
    assert f"need {needed:.0f}Mi" in message
    assert footprint.summary() in message
    # The same version with the default 512Mi fits.
    assert serving(store_dir, insurance).outputs


def test_a_version_outside_the_store_is_refused(tmp_path: Path, insurance: str) -> None:
    message = config_error(tmp_path / "other-store", insurance)
    assert f"{KEY_MODEL_URI} = {insurance!r}: is outside the model store" in message
    assert f"modelship models list {(tmp_path / 'other-store').resolve()}" in message
    escaping = config_error(Path(insurance).parents[2], "models/../../elsewhere/")
    assert "is outside the model store" in escaping


@pytest.mark.parametrize(
    "value",
    [
        "models/insurance-charges",
        "models/insurance-charges/latest/",
        f"models/insurance-charges/{'A' * 64}/",
        "data/insurance.csv",
        "models",
        ".",
    ],
)
def test_a_path_that_is_not_a_version_is_refused(store_dir: Path, value: str) -> None:
    message = config_error(store_dir, value)
    assert f"{KEY_MODEL_URI} = {value!r}: is not a version directory" in message
    assert "models/NAME/SHA256/" in message


def test_a_missing_or_incomplete_version_is_refused(own_store: Path, insurance: str) -> None:
    gone = f"models/insurance-charges/{'f' * 64}/"
    assert "the directory does not exist" in config_error(own_store, gone)

    empty = own_store / "models" / "empty" / ("e" * 64)
    empty.mkdir(parents=True)
    assert "model-card.json is missing" in config_error(own_store, str(empty))

    half = own_store / "models" / "half" / ("d" * 64)
    half.mkdir(parents=True)
    shutil.copy(Path(insurance) / artifact.CARD_FILE, half)
    assert "model.onnx is missing" in config_error(own_store, str(half))


def test_a_checksum_mismatch_is_refused(own_store: Path, store_dir: Path, insurance: str) -> None:
    version = own_store / Path(insurance).relative_to(store_dir)
    # A version copied under another hash: the directory name is the checksum.
    renamed = version.parent / ("0" * 64)
    shutil.copytree(version, renamed)
    message = config_error(own_store, str(renamed))
    assert f"{KEY_MODEL_URI} = {str(renamed)!r}: model {renamed}/: checksum mismatch" in message

    # A model file changed after publishing: it no longer matches its card.
    (version / artifact.ONNX_FILE).write_bytes(b"not the model")
    assert "does not match its model card" in config_error(own_store, str(version))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({KEY_MODEL_STORE_DIR: "C:/models"}, "modelship:modelStoreDir = 'C:/models': a directory"),
        ({"modelship:trainingData": "insurance.csv"}, "a CSV file under data/ in the model store"),
        ({"modelship:trainingTarget": "a,b"}, "the name of the column to predict"),
        ({"modelship:trainingCpu": "lots"}, "modelship:trainingCpu = 'lots': a Kubernetes CPU"),
        # Keys of the cloud buckets that mean nothing for a directory are not silently accepted.
        ({"modelship:keepModelStore": True}, "modelship:keepModelStore = (not set): unknown key"),
        ({"modelship:trainingDataDays": 30}, "modelship:trainingDataDays = (not set): unknown"),
    ],
)
def test_store_and_training_config_problems_name_the_key(
    overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        run_stack("local", overrides)
    assert message in str(info.value)


def test_a_store_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "store.txt"
    file.write_text("not a directory")
    with pytest.raises(ConfigError, match=r"modelship:modelStoreDir = '.*store\.txt': a directory"):
        run_stack("local", {KEY_MODEL_STORE_DIR: str(file)})


def test_docs_list_every_local_key() -> None:
    """docs/local.md stays true to the code: every key the local section reads is documented."""
    from infra.config import ConfigReader
    from infra.settings import read_shared
    from infra.targets.local.config import read_local_settings

    reader = ConfigReader("local", all_keys=[])
    shared = read_shared(reader, "modelship", ["local"])
    shared_keys = set(reader.known_keys)
    read_local_settings(reader, shared)
    keys = sorted(reader.known_keys - shared_keys)  # the shared keys are in docs/infrastructure.md
    assert len(keys) >= 9
    docs = (REPO_ROOT / "docs" / "local.md").read_text()
    missing = [key for key in keys if f"`{key}`" not in docs]
    assert not missing, f"not in docs/local.md: {missing}"
