"""Reading template.yaml as SAM does: Globals merged into functions and APIs."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ens_local.functions import load_template_function
from ens_local.template import DEFAULT_TEMPLATE, Resolver, Template, TemplateError, secret_name_from_arn

pytestmark = pytest.mark.unit

ENS_LAYER = (DEFAULT_TEMPLATE.parent / "layers" / "ens").resolve()


def with_binary_media_types(*types: str) -> Callable[[dict[str, Any]], None]:
    """An edit giving WebhookApi exactly these BinaryMediaTypes (none when empty)."""

    def edit(document: dict[str, Any]) -> None:
        properties = document["Resources"]["WebhookApi"]["Properties"]
        properties.pop("BinaryMediaTypes", None)
        if types:
            properties["BinaryMediaTypes"] = list(types)

    return edit


def test_a_function_s_own_layers_come_after_the_globals_layers(
    template_copy: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layer = tmp_path / "extra-layer"
    layer.mkdir()
    (layer / "extra_layer_probe.py").write_text("FROM = 'the extra layer'\n", encoding="utf-8")
    code = tmp_path / "code"
    code.mkdir()
    (code / "app.py").write_text(
        "import extra_layer_probe\ndef handler(event, context):\n    return extra_layer_probe.FROM\n",
        encoding="utf-8",
    )

    def add_function_with_its_own_layer(document: dict[str, Any]) -> None:
        document["Resources"]["ExtraLayer"] = {
            "Type": "AWS::Serverless::LayerVersion",
            "Properties": {"ContentUri": str(layer)},
        }
        document["Resources"]["ExtraFunction"] = {
            "Type": "AWS::Serverless::Function",
            "Properties": {
                "CodeUri": str(code),
                "Handler": "app.handler",
                "Layers": [{"Ref": "ExtraLayer"}],
            },
        }

    template = Template.load(template_copy(add_function_with_its_own_layer))
    specs = {spec.logical_id: spec for spec in template.functions()}
    monkeypatch.setattr(sys, "path", list(sys.path))  # loading prepends the layers; undone after the test

    assert specs["ExtraFunction"].layers == ({"Ref": "EnsLayer"}, {"Ref": "ExtraLayer"})
    assert [path.resolve() for path in template.layer_dirs(specs["ExtraFunction"])] == [ENS_LAYER, layer]
    assert specs["WebhookFunction"].layers == ({"Ref": "EnsLayer"},)  # Globals alone when it has none
    assert load_template_function(template, "ExtraFunction").invoke({}) == "the extra layer"


def test_binary_media_types_come_from_the_route_s_api_with_slashes_for_tildes(
    template_copy: Callable[..., Path],
) -> None:
    template = Template.load(template_copy(with_binary_media_types("*~1*", "image~1png", "text/csv")))

    assert template.binary_media_types("WebhookApi") == ("*/*", "image/png", "text/csv")
    assert template.binary_media_types("ServerlessRestApi") == ()  # SAM's implicit API: none declared


def test_an_api_without_binary_media_types_has_none(template_copy: Callable[..., Path]) -> None:
    template = Template.load(template_copy(with_binary_media_types()))

    assert template.binary_media_types("WebhookApi") == ()
    assert template.binary_media_types("NoSuchApi") == ()


def test_globals_binary_media_types_apply_to_every_api_before_its_own(
    template_copy: Callable[..., Path],
) -> None:
    def edit(document: dict[str, Any]) -> None:
        with_binary_media_types("image~1png")(document)
        document["Globals"]["Api"] = {"BinaryMediaTypes": ["application~1octet-stream"]}

    template = Template.load(template_copy(edit))

    assert template.binary_media_types("WebhookApi") == ("application/octet-stream", "image/png")
    assert template.binary_media_types("ServerlessRestApi") == ("application/octet-stream",)


def test_a_binary_media_type_that_is_not_a_string_is_refused(template_copy: Callable[..., Path]) -> None:
    def edit(document: dict[str, Any]) -> None:
        document["Resources"]["WebhookApi"]["Properties"]["BinaryMediaTypes"] = [{"Ref": "Stage"}]

    template = Template.load(template_copy(edit))

    with pytest.raises(TemplateError, match="WebhookApi: BinaryMediaTypes"):
        template.binary_media_types("WebhookApi")


def _resolver(**parameters: str) -> Resolver:
    return Resolver(
        refs={"Subnets": "", "Key": "", **parameters},
        attribute=lambda resource, attribute: f"{resource}.{attribute}",
        conditions={
            "HasSubnets": {"Fn::Not": [{"Fn::Equals": [{"Fn::Join": ["", {"Ref": "Subnets"}]}, ""]}]},
            "HasKey": {"Fn::Not": [{"Fn::Equals": [{"Ref": "Key"}, ""]}]},
            "Both": {"Fn::And": [{"Condition": "HasSubnets"}, {"Condition": "HasKey"}]},
        },
        list_refs=frozenset({"Subnets"}),
    )


def test_fn_if_follows_the_condition_and_no_value_drops_its_key_or_list_item() -> None:
    properties = {
        "VpcConfig": {"Fn::If": ["HasSubnets", {"SubnetIds": {"Ref": "Subnets"}}, {"Ref": "AWS::NoValue"}]},
        "Keys": [{"Fn::If": ["HasKey", {"Ref": "Key"}, {"Ref": "AWS::NoValue"}]}, "always"],
        "Both": {"Fn::If": ["Both", "yes", "no"]},
    }

    assert _resolver().resolve(properties) == {"Keys": ["always"], "Both": "no"}
    assert _resolver(Subnets="subnet-1, subnet-2", Key="k").resolve(properties) == {
        "VpcConfig": {"SubnetIds": ["subnet-1", "subnet-2"]},
        "Keys": ["k", "always"],
        "Both": "yes",
    }


def test_select_and_split_resolve_and_an_unknown_condition_is_refused_by_name() -> None:
    resolver = _resolver(Key="a:b:c")

    assert resolver.resolve({"Fn::Select": [1, {"Fn::Split": [":", {"Ref": "Key"}]}]}) == "b"
    with pytest.raises(TemplateError, match="Missing"):
        resolver.resolve({"Fn::If": ["Missing", 1, 2]})


def test_a_parameter_without_default_takes_its_local_stand_in_from_the_template_metadata() -> None:
    template = Template.load()

    defaults = template.parameter_defaults()

    assert secret_name_from_arn(defaults["ExchangeServersSecretArn"]) == "ens/exchange-servers"
    assert secret_name_from_arn(defaults["JwtKeySecretArn"]) == "ens/jwt-keys"
    assert secret_name_from_arn("ens/cns-token") == "ens/cns-token"
