"""Read template.yaml the way the local stack needs it: resources, functions and their triggers.

The local stack creates its tables and queues and wires its functions from this reading of
template.yaml, so that the local service and the deployed one cannot drift apart. Only the
intrinsic functions the template uses are resolved (Ref, Fn::GetAtt, Fn::Sub, Fn::Join, Fn::Select,
Fn::Split, Fn::If with the Conditions section, AWS::NoValue); an unsupported one fails loudly rather
than yielding a wrong value.
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


# Template Metadata key holding the values the local stack gives Parameters that have no Default
# (a deployment must choose them, e.g. the secrets' ARNs): local stand-ins, never deployed.
LOCAL_PARAMETERS_METADATA = "ENS::LocalStack"
NO_VALUE = "AWS::NoValue"


class TemplateError(ValueError):
    """template.yaml uses something the local stack cannot reproduce."""


def secret_name_from_arn(arn_or_name: str) -> str:
    """The secret's name in a Secrets Manager ARN (its random suffix kept if given); a name as is.

    The local stack creates its secrets by name, where a deployment is given their ARNs.
    """
    if not arn_or_name.startswith("arn:"):
        return arn_or_name
    _, separator, name = arn_or_name.partition(":secret:")
    if not separator or not name:
        raise TemplateError(f"{arn_or_name!r} is not a Secrets Manager secret ARN")
    return name


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
    conditions: dict[str, Any] = field(default_factory=dict)
    local_parameters: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path = DEFAULT_TEMPLATE) -> Template:
        document = cfn_yaml.load(str(path))
        local = document.get("Metadata", {}).get(LOCAL_PARAMETERS_METADATA, {}).get("Parameters", {})
        return cls(
            path=path,
            parameters=dict(document.get("Parameters", {})),
            resources=dict(document["Resources"]),
            globals_function=document.get("Globals", {}).get("Function", {}),
            globals_api=document.get("Globals", {}).get("Api", {}),
            conditions=dict(document.get("Conditions", {})),
            local_parameters={str(name): str(value) for name, value in local.items()},
        )

    def logical_ids(self, resource_type: str) -> list[str]:
        return [name for name, resource in self.resources.items() if resource["Type"] == resource_type]

    def properties(self, logical_id: str) -> Mapping[str, Any]:
        return self.resources[logical_id].get("Properties", {})

    def parameter_defaults(self) -> dict[str, str]:
        """Each Parameter's Default, else its local stand-in from the template's Metadata.

        A CommaDelimitedList's default stays the comma-separated text CloudFormation is given; the
        Resolver splits it where it is referenced.
        """
        defaults = {name: str(spec["Default"]) for name, spec in self.parameters.items() if "Default" in spec}
        unknown = set(self.local_parameters) - set(self.parameters)
        if unknown:
            raise TemplateError(
                f"Metadata {LOCAL_PARAMETERS_METADATA} names unknown parameter(s): {', '.join(sorted(unknown))}"
            )
        return {**self.local_parameters, **defaults}

    def list_parameters(self) -> frozenset[str]:
        """Parameters whose !Ref is a list (CommaDelimitedList, List<...>), not a string."""
        return frozenset(
            name
            for name, spec in self.parameters.items()
            if str(spec.get("Type", "")) == "CommaDelimitedList"
            or str(spec.get("Type", "")).startswith("List<")
        )

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

    `refs` maps a parameter or logical id to what !Ref gives; `attribute` answers !GetAtt;
    `conditions` are the template's Conditions, evaluated on first use; `list_refs` names the
    parameters whose !Ref is a list (their value is comma-separated text, as CloudFormation takes it).
    An `AWS::NoValue` drops the key or list item holding it, as CloudFormation does.
    """

    refs: Mapping[str, str]
    attribute: AttributeLookup
    pseudo: Mapping[str, str] = field(default_factory=dict)
    conditions: Mapping[str, Any] = field(default_factory=dict)
    list_refs: frozenset[str] = frozenset()
    _evaluated: dict[str, bool] = field(default_factory=dict, init=False, repr=False)

    def resolve(self, value: Any) -> Any:
        resolved = self._resolve(value)
        return None if resolved is _DROPPED else resolved

    def condition(self, name: str) -> bool:
        """The value of the template's condition `name`."""
        if name not in self._evaluated:
            if name not in self.conditions:
                raise TemplateError(f"condition {name!r} is not in the template's Conditions")
            self._evaluated[name] = False  # a condition naming itself ends here rather than recursing
            self._evaluated[name] = self._truth(self.conditions[name])
        return self._evaluated[name]

    def _resolve(self, value: Any) -> Any:
        if isinstance(value, Mapping):
            if len(value) == 1:
                (key, argument), *_ = value.items()
                if key == "Ref":
                    return _DROPPED if argument == NO_VALUE else self._ref(str(argument))
                if key == "Fn::GetAtt":
                    return self.attribute(*_getatt_parts(argument))
                if key == "Fn::Sub":
                    return self._sub(argument)
                if key == "Fn::Join":
                    separator, parts = argument
                    joined = self._resolve(parts)
                    if not isinstance(joined, list):
                        raise TemplateError(f"Fn::Join needs a list, got {joined!r}")
                    return str(separator).join(str(part) for part in joined)
                if key == "Fn::Select":
                    index, items = argument
                    selected = self._resolve(items)
                    if not isinstance(selected, list):
                        raise TemplateError(f"Fn::Select needs a list, got {selected!r}")
                    return selected[int(self._resolve(index))]
                if key == "Fn::Split":
                    separator, text = argument
                    return str(self._resolve(text)).split(str(separator))
                if key == "Fn::If":
                    name, when_true, when_false = argument
                    return self._resolve(when_true if self.condition(str(name)) else when_false)
                if key.startswith("Fn::") or key == "Condition":
                    raise TemplateError(f"the local stack does not resolve {key}")
            resolved_items = {key: self._resolve(item) for key, item in value.items()}
            return {key: item for key, item in resolved_items.items() if item is not _DROPPED}
        if isinstance(value, list):
            return [item for item in (self._resolve(item) for item in value) if item is not _DROPPED]
        return value

    def _truth(self, expression: Any) -> bool:
        if isinstance(expression, Mapping) and len(expression) == 1:
            (key, argument), *_ = expression.items()
            if key == "Condition":
                return self.condition(str(argument))
            if key == "Fn::Equals":
                left, right = (self._resolve(item) for item in argument)
                return _comparable(left) == _comparable(right)
            if key == "Fn::Not":
                (inner,) = argument
                return not self._truth(inner)
            if key == "Fn::And":
                return all(self._truth(item) for item in argument)
            if key == "Fn::Or":
                return any(self._truth(item) for item in argument)
        raise TemplateError(f"not a condition the local stack evaluates: {expression!r}")

    def _ref(self, name: str) -> Any:
        if name in self.pseudo:
            return self.pseudo[name]
        if name not in self.refs:
            raise TemplateError(f"!Ref {name}: no such parameter or resource known locally")
        if name in self.list_refs:
            text = self.refs[name]
            return [item.strip() for item in text.split(",")] if text else []
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
            return str(self._ref(name))

        return re.sub(r"\$\{([^}!]+)\}", substitute, str(text))


class _Dropped:
    """What `!Ref AWS::NoValue` resolves to until the key or list item holding it is dropped."""


_DROPPED: Any = _Dropped()


def _comparable(value: Any) -> Any:
    # Fn::Equals compares strings: a number written as 5 equals "5".
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
