"""`sam build` turns template.yaml into deployable arm64 artifacts, offline from Docker."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

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
