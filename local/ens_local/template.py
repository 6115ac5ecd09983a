"""Read template.yaml the way the local stack needs it: resources, functions and their triggers.

The local stack creates its tables and queues and wires its functions from this reading of
template.yaml, so that the local service and the deployed one cannot drift apart. Only the
intrinsic functions the template uses are resolved (Ref, Fn::GetAtt, Fn::Sub, Fn::Join); an
unsupported one fails loudly rather than yielding a wrong value.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cfnlint.decode import cfn_yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TEMPLATE = REPO_ROOT / "template.yaml"

TABLE = "AWS::DynamoDB::Table"
QUEUE = "AWS::SQS::Queue"
FUNCTION = "AWS::Serverless::Function"
LAYER = "AWS::Serverless::LayerVersion"
API = "AWS::Serverless::Api"


class TemplateError(ValueError):
    """template.yaml uses something the local stack cannot reproduce."""


@dataclass(frozen=True)
class ApiRoute:
    function: str
    method: str
    path: str  # API Gateway style, e.g. /ews/notifications/{token}
    api: str = "ServerlessRestApi"  # logical id of the RestApi; SAM's implicit one when none is named


@dataclass(frozen=True)
class QueueTrigger:
    function: str
    queue: str  # logical id of the AWS::SQS::Queue
    batch_size: int  # with the template's parameter defaults; `batch_size_source` as written
    report_batch_item_failures: bool
    batch_size_source: Any = 10


@dataclass(frozen=True)
class ScheduleTrigger:
    """An EventBridge `Schedule` event: the function runs every `rate` (a rate() expression)."""

    function: str
    name: str  # the event's key in the template
    expression_source: Any  # as written, e.g. !Sub "rate(${WatchdogIntervalMinutes} minutes)"


_RATE = re.compile(r"rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


def rate_seconds(expression: str) -> int:
    """Seconds between runs of an EventBridge rate() expression; cron() is not reproduced locally."""
    match = _RATE.fullmatch(expression.strip())
    if match is None:
        raise TemplateError(f"the local stack runs rate() schedules only, not {expression!r}")
    count = int(match.group(1))
    if count < 1:
        raise TemplateError(f"{expression!r}: a rate is at least 1")
    return count * _UNIT_SECONDS[match.group(2).removesuffix("s")]


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    code_dir: Path
    handler: str  # module.function, as in SAM
    timeout_seconds: int
    environment: dict[str, Any]  # still unresolved: values may hold intrinsic functions
    routes: tuple[ApiRoute, ...] = ()
    queue_triggers: tuple[QueueTrigger, ...] = ()
    schedules: tuple[ScheduleTrigger, ...] = ()
    memory_mb: int = 128
    layers: tuple[Any, ...] = ()  # unresolved Layers entries, usually {"Ref": <LayerVersion>}


@dataclass
class Template:
    path: Path
    parameters: dict[str, Mapping[str, Any]]
    resources: dict[str, Mapping[str, Any]]
    globals_function: Mapping[str, Any] = field(default_factory=dict)
    globals_api: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path = DEFAULT_TEMPLATE) -> Template:
        document = cfn_yaml.load(str(path))
        return cls(
            path=path,
            parameters=dict(document.get("Parameters", {})),
            resources=dict(document["Resources"]),
            globals_function=document.get("Globals", {}).get("Function", {}),
            globals_api=document.get("Globals", {}).get("Api", {}),
        )

    def logical_ids(self, resource_type: str) -> list[str]:
        return [name for name, resource in self.resources.items() if resource["Type"] == resource_type]

    def properties(self, logical_id: str) -> Mapping[str, Any]:
        return self.resources[logical_id].get("Properties", {})

    def parameter_defaults(self) -> dict[str, str]:
        return {name: str(spec["Default"]) for name, spec in self.parameters.items() if "Default" in spec}

    def _with_defaults(self, value: Any) -> Any:
        """A `!Ref Parameter` replaced by the parameter's default; the stack resolves with real values."""
        if isinstance(value, Mapping) and set(value) == {"Ref"} and str(value["Ref"]) in self.parameters:
            return self.parameters[str(value["Ref"])].get("Default")
        return value

    def functions(self) -> list[FunctionSpec]:
        return [self._function(logical_id) for logical_id in self.logical_ids(FUNCTION)]

    def _function(self, logical_id: str) -> FunctionSpec:
        properties = self.properties(logical_id)
        merged_env = {
            **self.globals_function.get("Environment", {}).get("Variables", {}),
            **properties.get("Environment", {}).get("Variables", {}),
        }
        routes: list[ApiRoute] = []
        triggers: list[QueueTrigger] = []
        schedules: list[ScheduleTrigger] = []
        for event_name, event in properties.get("Events", {}).items():
            event_properties = event.get("Properties", {})
            if event["Type"] == "Api":
                rest_api = event_properties.get("RestApiId")
                routes.append(
                    ApiRoute(
                        logical_id,
                        event_properties["Method"].upper(),
                        event_properties["Path"],
                        api=str(rest_api["Ref"])
                        if isinstance(rest_api, Mapping) and "Ref" in rest_api
                        else "ServerlessRestApi",
                    )
                )
            elif event["Type"] == "Schedule":
                if (
                    event_properties.get("Enabled", True) is False
                    or event_properties.get("State") == "DISABLED"
                ):
                    continue
                schedules.append(ScheduleTrigger(logical_id, str(event_name), event_properties["Schedule"]))
            elif event["Type"] == "SQS":
                queue = event_properties["Queue"]
                if not (isinstance(queue, Mapping) and "Fn::GetAtt" in queue):
                    raise TemplateError(f"{logical_id}: an SQS event's Queue must be !GetAtt <Queue>.Arn")
                triggers.append(
                    QueueTrigger(
                        function=logical_id,
                        queue=_getatt_parts(queue["Fn::GetAtt"])[0],
                        batch_size=int(self._with_defaults(event_properties.get("BatchSize", 10))),
                        batch_size_source=event_properties.get("BatchSize", 10),
                        report_batch_item_failures="ReportBatchItemFailures"
                        in event_properties.get("FunctionResponseTypes", []),
                    )
                )
        return FunctionSpec(
            logical_id=logical_id,
            code_dir=self.path.parent / properties.get("CodeUri", "."),
            handler=properties.get("Handler", self.globals_function.get("Handler", "")),
            timeout_seconds=int(properties.get("Timeout", self.globals_function.get("Timeout", 3))),
            environment=merged_env,
            routes=tuple(routes),
            queue_triggers=tuple(triggers),
            schedules=tuple(schedules),
            memory_mb=int(properties.get("MemorySize", self.globals_function.get("MemorySize", 128))),
            # SAM merges list-valued Globals: the Globals layers come first, the function's own after.
            layers=(*self.globals_function.get("Layers", []), *properties.get("Layers", [])),
        )

    def binary_media_types(self, api: str) -> tuple[str, ...]:
        """The media types the RestApi `api` (a logical id) treats as binary, with `/` for `~1`.

        Globals' Api section applies to every AWS::Serverless::Api, SAM's implicit ServerlessRestApi
        included, and its list comes before the resource's own, as SAM merges lists. Templates write
        `/` as `~1` there (e.g. "*~1*"), as CloudFormation requires; an API without any treats every
        body as text.
        """
        resource = self.resources.get(api, {})
        own = (
            resource.get("Properties", {}).get("BinaryMediaTypes", []) if resource.get("Type") == API else []
        )
        types: list[str] = []
        for entry in [*self.globals_api.get("BinaryMediaTypes", []), *own]:
            if not isinstance(entry, str):
                raise TemplateError(f"{api}: BinaryMediaTypes entries must be plain strings, got {entry!r}")
            types.append(entry.replace("~1", "/"))
        return tuple(types)

    def layer_dirs(self, function: FunctionSpec) -> list[Path]:
        """Directories of the function's layers declared in this template, in the function's order.

        A layer given by ARN (a published, third-party layer) has no local code: it is skipped, and
        its packages must come from the virtualenv instead.
        """
        directories: list[Path] = []
        for layer in function.layers:
            if isinstance(layer, Mapping) and "Ref" in layer:
                resource = self.resources.get(str(layer["Ref"]), {})
                content_uri = resource.get("Properties", {}).get("ContentUri")
                if resource.get("Type") == LAYER and isinstance(content_uri, str):
                    directories.append(self.path.parent / content_uri)
        return directories


def _getatt_parts(value: Any) -> tuple[str, str]:
    if isinstance(value, str):
        logical_id, _, attribute = value.partition(".")
        return logical_id, attribute
    return str(value[0]), str(value[1])


AttributeLookup = Callable[[str, str], str]


@dataclass
class Resolver:
    """Resolves intrinsic functions against local values.

    `refs` maps a parameter or logical id to what !Ref gives; `attribute` answers !GetAtt.
    """

    refs: Mapping[str, str]
    attribute: AttributeLookup
    pseudo: Mapping[str, str] = field(default_factory=dict)

    def resolve(self, value: Any) -> Any:
        if isinstance(value, Mapping):
            if len(value) == 1:
                (key, argument), *_ = value.items()
                if key == "Ref":
                    return self._ref(str(argument))
                if key == "Fn::GetAtt":
                    return self.attribute(*_getatt_parts(argument))
                if key == "Fn::Sub":
                    return self._sub(argument)
                if key == "Fn::Join":
                    separator, parts = argument
                    return str(separator).join(str(self.resolve(part)) for part in parts)
                if key.startswith("Fn::"):
                    raise TemplateError(f"the local stack does not resolve {key}")
            return {key: self.resolve(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        return value

    def _ref(self, name: str) -> str:
        if name in self.pseudo:
            return self.pseudo[name]
        if name not in self.refs:
            raise TemplateError(f"!Ref {name}: no such parameter or resource known locally")
        return self.refs[name]

    def _sub(self, argument: Any) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else (argument[0], argument[1])
        resolved_variables = {key: str(self.resolve(item)) for key, item in variables.items()}

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in resolved_variables:
                return resolved_variables[name]
            if "." in name:
                return self.attribute(*_getatt_parts(name))
            return self._ref(name)

        return re.sub(r"\$\{([^}!]+)\}", substitute, str(text))
