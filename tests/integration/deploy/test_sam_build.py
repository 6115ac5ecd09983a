"""`sam build` turns template.yaml into deployable arm64 artifacts, offline from Docker, that import cleanly."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import pytest

from ens_local.template import Resolver, Template

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[3]
SAM = REPO / ".venv-sam" / "bin" / "sam"


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not SAM.exists():
        pytest.fail("SAM CLI missing: run `make venv` (make test does) to create .venv-sam")
    build = tmp_path_factory.mktemp("sam") / "build"
    environment = {
        **os.environ,
        "PATH": f"{SAM.parent}{os.pathsep}{os.environ['PATH']}",
        "SAM_CLI_TELEMETRY": "0",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }
    subprocess.run(
        [str(SAM), "build", "--template", str(REPO / "template.yaml"), "--build-dir", str(build)],
        cwd=REPO,
        env=environment,
        check=True,
        capture_output=True,
        timeout=600,
    )
    return build


def test_layer_carries_the_ens_package_and_arm64_dependencies(build_dir: Path) -> None:
    layer = build_dir / "EnsLayer" / "python"

    assert (layer / "ens" / "services" / "webhook.py").is_file()
    assert (layer / "aws_lambda_powertools").is_dir()
    (lxml_extension,) = (layer / "lxml").glob("etree.cpython-313-*.so")
    assert "aarch64" in lxml_extension.name


def test_webhook_function_ships_only_its_handler(build_dir: Path) -> None:
    shipped = {path.name for path in (build_dir / "WebhookFunction").iterdir()}

    assert "app.py" in shipped
    assert not shipped & {"ens", "exchange_simulator", "ens_local", "ens_admin", "tests"}


def test_no_tooling_is_packaged(build_dir: Path) -> None:
    packaged = {path.name for path in build_dir.rglob("*") if path.is_dir()}

    assert not packaged & {"exchange_simulator", "ens_local", "ens_admin", "support"}


# What the python3.13 Lambda runtime itself provides beside the layer: boto3 and its dependencies.
LAMBDA_RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "dateutil", "six.py")
FUNCTIONS = ("WebhookFunction", "ConsumerFunction", "DevicesFunction", "WatchdogFunction")


def _host_site_packages() -> Path:
    (site_packages,) = (REPO / ".venv" / "lib").glob("python3.13/site-packages")
    return site_packages


def _stand_in_for_the_runtime(build_dir: Path, root: Path) -> list[Path]:
    """sys.path entries after the function's own: the built layer, and boto3 as the runtime has it.

    The layer's native extensions are built for arm64; on another machine each package holding one
    is shadowed by the host's copy of the same pinned version, so the rest of the artifact (every
    pure-Python file, the package layout) is what gets imported.
    """
    layer = build_dir / "EnsLayer" / "python"
    site_packages = _host_site_packages()
    runtime = root / "runtime"
    runtime.mkdir()
    for name in LAMBDA_RUNTIME_PACKAGES:
        (runtime / name).symlink_to(site_packages / name)
    entries = [layer, runtime]
    if platform.machine() not in ("aarch64", "arm64"):
        shadow = root / "host-native"
        shadow.mkdir()
        for item in layer.iterdir():
            if item.is_dir() and not item.name.endswith(".dist-info") and any(item.rglob("*.so")):
                (shadow / item.name).symlink_to(site_packages / item.name)
            elif item.suffix == ".so":
                module = item.name.split(".")[0]
                for native in site_packages.glob(f"{module}.*.so"):
                    (shadow / native.name).symlink_to(native)
        entries.insert(0, shadow)
    return entries


def _dummy_environment(logical_id: str) -> dict[str, str]:
    """The function's environment as the template sets it, with stand-in names and ARNs."""
    template = Template.load()
    (spec,) = [spec for spec in template.functions() if spec.logical_id == logical_id]
    resolver = Resolver(
        refs={**template.parameter_defaults(), **{name: name for name in template.resources}},
        attribute=lambda resource, attribute: f"arn:aws:local:eu-west-1:123456789012:{resource}/{attribute}",
        pseudo={"AWS::Region": "eu-west-1", "AWS::AccountId": "123456789012", "AWS::Partition": "aws"},
        conditions=template.conditions,
        list_refs=template.list_parameters(),
    )
    return {key: str(value) for key, value in resolver.resolve(spec.environment).items()}


@pytest.mark.parametrize("logical_id", FUNCTIONS)
def test_each_function_artifact_imports_under_python_313_with_only_its_layer_and_boto3(
    build_dir: Path, tmp_path: Path, logical_id: str
) -> None:
    path = [build_dir / logical_id, *_stand_in_for_the_runtime(build_dir, tmp_path)]
    probe = (
        "import sys; sys.path[:0] = sys.argv[1:]; import app; "
        "assert callable(app.handler); print(sys.version_info[:2])"
    )
    environment = {
        "PATH": os.environ["PATH"],
        "AWS_REGION": "eu-west-1",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_LAMBDA_FUNCTION_NAME": logical_id,
        **_dummy_environment(logical_id),
    }

    # -I -S: no site-packages, no PYTHON* variables, no current directory: only what is on `path`.
    imported = subprocess.run(
        [str(SAM.parent / "python"), "-I", "-S", "-c", probe, *map(str, path)],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert imported.returncode == 0, imported.stderr[-3000:]
    assert imported.stdout.strip() == "(3, 13)"
