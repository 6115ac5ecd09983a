"""Load and invoke a template's Lambda handlers in this process, the way the Lambda runtime would.

Differences from Lambda that matter (docs/local-stack.md has the full list):
- every function shares this process, so environment variables are process-wide: `merge_environments`
  refuses two functions that need different values for one variable;
- one execution environment per function: its invocations are serialised, as they would be inside one
  Lambda sandbox, so module-level state (Powertools' Logger keys, clients) is never shared by two
  concurrent invocations;
- a timeout cannot interrupt Python code: an invocation that overran its Timeout is reported as a
  timeout after it returns, and its result is discarded, which is what the caller would have seen.
"""

from __future__ import annotations

import importlib.util
import itertools
import logging
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from ens_local.aws import LOCAL_ACCOUNT_ID
from ens_local.template import FunctionSpec, Template

log = logging.getLogger("local_stack.functions")

Handler = Callable[[Any, Any], Any]
_MODULE_PREFIX = "_ens_lambda_"
_load_counter = itertools.count(1)


class FunctionLoadError(RuntimeError):
    """A handler named in the template cannot be imported."""


class EnvironmentConflict(RuntimeError):
    """Two functions need different values for one process-wide environment variable."""


class FunctionTimeout(RuntimeError):
    """The invocation ran longer than the function's Timeout."""


@dataclass
class LambdaContext:
    """The context object the Python runtime passes; what Powertools' inject_lambda_context reads."""

    function_name: str
    memory_limit_in_mb: int
    timeout_seconds: int
    region: str = "eu-west-1"
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    identity: Any = None
    client_context: Any = None
    tenant_id: str | None = None
    _deadline: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        if not self._deadline:
            self._deadline = time.monotonic() + self.timeout_seconds

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{LOCAL_ACCOUNT_ID}:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return f"{datetime.now(UTC):%Y/%m/%d}/[{self.function_version}]{uuid.uuid4().hex}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass
class LoadedFunction:
    """A handler imported from its code folder, invoked with a fresh context each time."""

    spec: FunctionSpec
    handler: Handler
    module: ModuleType
    function_name: str
    region: str
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def logical_id(self) -> str:
        return self.spec.logical_id

    def new_context(self) -> LambdaContext:
        return LambdaContext(
            function_name=self.function_name,
            memory_limit_in_mb=self.spec.memory_mb,
            timeout_seconds=self.spec.timeout_seconds,
            region=self.region,
        )

    def invoke(self, event: Any, context: LambdaContext | None = None) -> Any:
        """Call the handler; raises what it raises, or FunctionTimeout if it overran its Timeout."""
        context = context or self.new_context()
        with self._lock:
            started = time.monotonic()
            result = self.handler(event, context)
            elapsed = time.monotonic() - started
        if elapsed > self.spec.timeout_seconds:
            raise FunctionTimeout(f"Task timed out after {self.spec.timeout_seconds:.2f} seconds")
        return result


def load_function(
    spec: FunctionSpec,
    layer_dirs: Iterable[Path] = (),
    *,
    function_name: str | None = None,
    region: str | None = None,
) -> LoadedFunction:
    """Import the handler fresh, as a cold start does.

    The handler module gets a name unique to this load, so two functions may both have app.py and a
    test that loads again gets new module-level state. Modules the function folder holds besides the
    handler (helpers imported by bare name) are dropped from sys.modules first, so one function never
    runs another's helper of the same name. Layer packages stay imported: they are shared code and
    should keep no per-function state at import time.
    """
    module_path, _, attribute = spec.handler.rpartition(".")
    if not module_path or not attribute:
        raise FunctionLoadError(f"{spec.logical_id}: Handler {spec.handler!r} is not module.function")
    code_dir = spec.code_dir.resolve()
    relative = Path(*module_path.split("."))
    source = code_dir / relative.with_suffix(".py")
    package_init = code_dir / relative / "__init__.py"
    if not source.is_file() and package_init.is_file():
        source = package_init
    if not source.is_file():
        raise FunctionLoadError(
            f"{spec.logical_id}: handler module {module_path!r} not found in CodeUri {spec.code_dir}"
        )

    for directory in [*reversed([Path(d).resolve() for d in layer_dirs]), code_dir]:
        if str(directory) not in sys.path:
            sys.path.insert(0, str(directory))
        elif directory == code_dir:
            # This function's helpers must win over another function's same-named ones.
            sys.path.remove(str(directory))
            sys.path.insert(0, str(directory))
    _forget_modules_under(code_dir)
    _forget_container_caches()

    unique_name = f"{_MODULE_PREFIX}{spec.logical_id}_{module_path.replace('.', '_')}_{next(_load_counter)}"
    module_spec = importlib.util.spec_from_file_location(
        unique_name,
        source,
        submodule_search_locations=[str(source.parent)] if source.name == "__init__.py" else None,
    )
    if module_spec is None or module_spec.loader is None:
        raise FunctionLoadError(f"{spec.logical_id}: cannot import {source}")
    module = importlib.util.module_from_spec(module_spec)
    # Registered before running so dataclasses, pickling and typing can find the module by name.
    sys.modules[unique_name] = module
    try:
        module_spec.loader.exec_module(module)
    except Exception as error:
        sys.modules.pop(unique_name, None)
        raise FunctionLoadError(f"{spec.logical_id}: importing {source} failed: {error!r}") from error
    handler = getattr(module, attribute, None)
    if not callable(handler):
        raise FunctionLoadError(f"{spec.logical_id}: {source} has no callable {attribute!r}")
    return LoadedFunction(
        spec=spec,
        handler=handler,
        module=module,
        function_name=function_name or spec.logical_id,
        region=region or os.environ.get("AWS_REGION", "eu-west-1"),
    )


def _forget_container_caches() -> None:
    """A cold start begins in a new container: none of the library caches an earlier load filled in
    this process (Powertools' parameters and secrets, exchangelib's protocols and their pools) may
    carry over, or a function started against a new local AWS or simulator reads the old ones."""
    from aws_lambda_powertools.utilities import parameters

    parameters.clear_caches()
    if "exchangelib.protocol" in sys.modules:
        sys.modules["exchangelib.protocol"].close_connections()


def load_template_function(
    template: Template, logical_id: str, *, stack_name: str | None = None, region: str | None = None
) -> LoadedFunction:
    """Load one function of a template by logical id, with its layers on sys.path."""
    specs = {spec.logical_id: spec for spec in template.functions()}
    if logical_id not in specs:
        raise FunctionLoadError(f"{template.path.name} has no function {logical_id}; has {sorted(specs)}")
    spec = specs[logical_id]
    return load_function(
        spec,
        template.layer_dirs(spec),
        function_name=f"{stack_name}-{logical_id}" if stack_name else logical_id,
        region=region,
    )


def _forget_modules_under(directory: Path) -> None:
    """Drop this folder's modules, and any other module of a name this folder provides.

    The handler then imports its helpers afresh from its own folder: a cold start, and never a
    same-named helper another function (or an earlier load) left in sys.modules.
    """
    prefix = str(directory) + os.sep
    provided = {path.stem for path in directory.glob("*.py")} | {
        path.parent.name for path in directory.glob("*/__init__.py")
    }
    for name, module in list(sys.modules.items()):
        if name.startswith(_MODULE_PREFIX):
            continue
        file = getattr(module, "__file__", None)
        if name.split(".")[0] in provided or (file and os.path.abspath(file).startswith(prefix)):
            del sys.modules[name]
    importlib.invalidate_caches()


def merge_environments(
    environments: Mapping[str, Mapping[str, Any]], overrides: Mapping[str, str] | None = None
) -> dict[str, str]:
    """One process environment for every function; overrides win and settle conflicts.

    `environments` maps a function's logical id to its resolved variables.
    """
    overrides = overrides or {}
    merged: dict[str, str] = {}
    owner: dict[str, str] = {}
    for function, variables in environments.items():
        for name, value in variables.items():
            if name in overrides:
                continue
            text = str(value)
            if name in merged and merged[name] != text:
                raise EnvironmentConflict(
                    f"environment variable {name} differs between functions: {owner[name]} needs "
                    f"{merged[name]!r}, {function} needs {text!r}. All functions share one process "
                    f"locally; give them distinct variable names in template.yaml, or set {name} "
                    f"under [environment] to choose one value for both."
                )
            merged[name] = text
            owner.setdefault(name, function)
    merged.update(overrides)
    return merged


def apply_environment(variables: Mapping[str, str]) -> dict[str, str | None]:
    """Set variables in os.environ; returns the previous values for `restore_environment`."""
    previous = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    return previous


def restore_environment(previous: Mapping[str, str | None]) -> None:
    for name, value in previous.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
