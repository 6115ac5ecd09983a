"""Translate template.yaml to CloudFormation the way `sam deploy` does, offline; print it as JSON.

Runs in SAM's own virtualenv (.venv-sam), which holds aws-sam-translator and the SAM CLI's YAML
loader; the project's virtualenv has neither. No AWS call is made.

    .venv-sam/bin/python tests/support/sam_translate.py template.yaml
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from boto3.session import Session  # type: ignore[import-untyped]
from samcli.yamlhelper import yaml_parse  # type: ignore[import-not-found]
from samtranslator.parser.parser import Parser  # type: ignore[import-not-found]
from samtranslator.translator.translator import Translator  # type: ignore[import-not-found]

REGION = "eu-west-1"


# What `sam package` uploads and rewrites to an S3 URI before the transform sees the template.
_LOCAL_ARTIFACTS = {"AWS::Serverless::Function": "CodeUri", "AWS::Serverless::LayerVersion": "ContentUri"}


def packaged(document: dict[str, Any]) -> dict[str, Any]:
    """The template as `sam package` leaves it: local code paths replaced by (made-up) S3 URIs."""
    for resource in document.get("Resources", {}).values():
        key = _LOCAL_ARTIFACTS.get(resource.get("Type"))
        properties = resource.get("Properties", {})
        if key and isinstance(properties.get(key), str) and not properties[key].startswith("s3://"):
            properties[key] = f"s3://ens-artifacts/{properties[key].strip('/')}"
    return document


def translate(template_path: Path) -> dict[str, Any]:
    document = packaged(yaml_parse(template_path.read_text(encoding="utf-8")))
    # A session with a region and nothing else: the translator reads the region and partition from
    # it and makes no call. No managed policy map: the resources this checks do not use one.
    translator = Translator({}, Parser(), boto_session=Session(region_name=REGION))
    result: dict[str, Any] = translator.translate(document, parameter_values={}, get_managed_policy_map=dict)
    return result


if __name__ == "__main__":
    json.dump(translate(Path(sys.argv[1])), sys.stdout, default=str)
