"""The whole service on one machine: local AWS, the functions, their triggers and the simulator.

`LocalStack(settings).start()` does, in this order:
1. start moto (or take a running one) and create every table and queue of template.yaml;
2. run the SEEDERS (the extension point for demo data);
3. bind the HTTP front, start the Exchange simulator and the push sink if enabled (their URLs may
   appear in settings through ${api_url}-style placeholders), create the [secrets] in Secrets Manager,
   and the push sink's token secret;
4. resolve every function's template environment, add the local AWS variables and [environment],
   refuse conflicting values, and apply the result to os.environ (restored on stop);
5. import every function's handler, serve the template's Api events, start one SQS poller per
   SQS event and one scheduler thread per Schedule event (rate() only) in the template. A function
   added to template.yaml is picked up here, unedited.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any

from ens.core.subscriptions import Subscription
from ens_local.api_gateway import ApiGatewayFront
from ens_local.aws import LocalAws, ProvisionedStack, provision
from ens_local.config import Settings, StackSettings, fill_placeholders
from ens_local.demo import register_demo_devices, seed_demo_subscriptions, subscribe_demo_mailboxes
from ens_local.functions import (
    LoadedFunction,
    apply_environment,
    load_function,
    merge_environments,
    restore_environment,
)
from ens_local.scheduler import ScheduledRun
from ens_local.sqs_trigger import BatchOutcome, Handler, SqsTrigger
from ens_local.template import API, Template, rate_seconds

# Not "ens_local...": Powertools' Logger(service="ens") filters, on the root handlers, every logger
# whose name contains "ens", which would swallow these lines (and hide them from pytest's caplog).
LOGGER = "local_stack"
log = logging.getLogger(LOGGER)

Seeder = Callable[["LocalStack"], None]

# Extension point: callables run once after the tables and queues exist and before any request or
# message is handled, when [stack] seed = true. Each gets the LocalStack (stack.aws.client("dynamodb"),
# stack.table_names, stack.queue_urls, stack.settings). Append to it from the module that owns the
# demo data, e.g. `SEEDERS.append(seed_demo_subscriptions)`; a LocalStack(seeders=[...]) overrides it.
SEEDERS: list[Seeder] = [seed_demo_subscriptions]

# What `sam local` puts in every function's environment; Powertools' Tracer reads it to stay off.
SAM_LOCAL_ENVIRONMENT = {"AWS_SAM_LOCAL": "true"}


class LocalStackError(RuntimeError):
    """The local stack cannot start as configured."""


class LocalStack:
    """Runs the service locally; use as a context manager or call start() and stop().

    `aws` lets tests share one running moto server (each LocalStack names its resources after its
    own stack_name). `start_pollers=False` leaves SQS polling to `poll_all_once()` and scheduled
    runs to `run_schedules_once()`, for tests that want each at a moment of their choosing.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        aws: LocalAws | None = None,
        seeders: Sequence[Seeder] | None = None,
        start_pollers: bool = True,
    ) -> None:
        self.settings = settings
        self.template = Template.load(settings.stack.template)
        self._shared_aws = aws
        self._seeders = list(SEEDERS if seeders is None else seeders)
        self._start_pollers = start_pollers
        self.aws: LocalAws | None = None
        self.provisioned: ProvisionedStack | None = None
        self.functions: dict[str, LoadedFunction] = {}
        self.triggers: list[SqsTrigger] = []
        self.schedules: list[ScheduledRun] = []
        self.front: ApiGatewayFront | None = None
        self.simulator: Any = None
        self.push_sink: Any = None
        self.live_subscriptions: list[Subscription] = []
        self.demo_devices: list[dict[str, Any]] = []
        self.environment: dict[str, str] = {}
        self._previous_environment: dict[str, str | None] = {}
        self._running = False

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> LocalStack:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        self._running = True
        for line in self.describe():
            log.info("%s", line)
        return self

    def _start(self) -> None:
        stack = self.settings.stack
        if self._shared_aws is not None:
            self.aws = self._shared_aws.for_stack(stack.stack_name)
            self.aws.region = stack.region
        else:
            self.aws = LocalAws(
                host=stack.host, port=stack.aws_port, region=stack.region, stack_name=stack.stack_name
            )
            try:
                self.aws.start()
            except OSError as error:
                raise LocalStackError(
                    f"local AWS cannot listen on {stack.host}:{stack.aws_port}: {error}"
                ) from error
        self.provisioned = provision(self.aws, self.template, self.settings.parameters)
        if stack.seed:
            for seeder in self._seeders:
                seeder(self)

        try:
            self.front = ApiGatewayFront(
                self.functions,
                [route for spec in self.template.functions() for route in spec.routes],
                host=stack.host,
                port=stack.api_port,
                stages=self._stages(),
                binary_media_types=self._binary_media_types(),
            )
        except OSError as error:
            raise LocalStackError(
                f"the API front cannot listen on {stack.host}:{stack.api_port}: {error}"
            ) from error
        if self.settings.exchange_simulator.enabled:
            self._start_simulator()
        if self.settings.push_sink.enabled:
            self._start_push_sink()
        placeholders = self.placeholders()
        self._create_secrets(placeholders)

        resolver = self.provisioned.resolver()
        per_function = {
            spec.logical_id: resolver.resolve(spec.environment) for spec in self.template.functions()
        }
        overrides = {
            **self.aws.environment(),
            **SAM_LOCAL_ENVIRONMENT,
            **{
                name: fill_placeholders(value, placeholders)
                for name, value in self.settings.environment.items()
            },
        }
        self.environment = merge_environments(per_function, overrides)
        self._previous_environment = apply_environment(self.environment)

        for spec in self.template.functions():
            self.functions[spec.logical_id] = load_function(
                spec,
                self.template.layer_dirs(spec),
                function_name=f"{stack.stack_name}-{spec.logical_id}",
                region=stack.region,
            )
        self.front.start()
        for spec in self.template.functions():
            for trigger in spec.queue_triggers:
                self.add_trigger(
                    SqsTrigger(
                        sqs=self.aws.client("sqs"),
                        queue_url=self.provisioned.queue_urls[trigger.queue],
                        queue_arn=self.provisioned.queue_arn(trigger.queue),
                        batch_size=int(resolver.resolve(trigger.batch_size_source)),
                        handler=self.functions[spec.logical_id],
                        report_batch_item_failures=trigger.report_batch_item_failures,
                        region=stack.region,
                    )
                )
            for schedule in spec.schedules:
                run = ScheduledRun(
                    function=self.functions[spec.logical_id],
                    name=schedule.name,
                    rate_seconds=rate_seconds(str(resolver.resolve(schedule.expression_source))),
                    region=stack.region,
                )
                self.schedules.append(run)
                if self._start_pollers:
                    run.start()
        if stack.seed:
            # Last: Exchange's callbacks need the front and the webhook to be up.
            self.live_subscriptions = subscribe_demo_mailboxes(self)
            # Through the devices API, which subscribes their mailboxes: the pollers and front are up.
            self.demo_devices = register_demo_devices(self)

    def stop(self) -> None:
        # Signal every poller first so their long polls end together, not one after another.
        for trigger in self.triggers:
            trigger.request_stop()
        for trigger in self.triggers:
            trigger.stop()
        for run in self.schedules:
            run.stop()
        if self.front is not None:
            self.front.stop()
            self.front = None
        if self.simulator is not None:
            try:
                self.simulator.stop()
            finally:
                self.simulator = None
        if self.push_sink is not None:
            try:
                self.push_sink.stop()
            finally:
                self.push_sink = None
        restore_environment(self._previous_environment)
        self._previous_environment = {}
        if self.aws is not None:
            self.aws.stop()  # a view of a shared server leaves the server running
        self._running = False

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    # -- what runs where ---------------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        if self.front is None:
            raise RuntimeError("LocalStack is not started")
        return self.front.url

    @property
    def aws_endpoint_url(self) -> str:
        if self.aws is None:
            raise RuntimeError("LocalStack is not started")
        return self.aws.endpoint_url

    @property
    def queue_urls(self) -> dict[str, str]:
        return dict(self._provisioned().queue_urls)

    @property
    def table_names(self) -> dict[str, str]:
        return dict(self._provisioned().table_names)

    def queue_arn(self, logical_id: str) -> str:
        return self._provisioned().queue_arn(logical_id)

    def client(self, service: str) -> Any:
        """A boto3 client for local AWS (sqs, dynamodb, secretsmanager, ...)."""
        if self.aws is None:
            raise RuntimeError("LocalStack is not started")
        return self.aws.client(service)

    def placeholders(self) -> dict[str, str]:
        """Values for ${...} in [environment] and [secrets]; see config.PLACEHOLDERS."""
        values = {"aws_endpoint_url": self.aws_endpoint_url, "api_url": self.api_url}
        if self.simulator is not None:
            values["simulator_base_url"] = str(self.simulator.base_url)
            values["simulator_ews_url"] = str(self.simulator.ews_url)
        if self.push_sink is not None:
            values["push_sink_url"] = str(self.push_sink.url)
            # Empty without TLS: the client then needs no CA of its own.
            values["push_sink_ca_bundle"] = str(self.push_sink.ca_bundle_path or "")
        return values

    def describe(self) -> list[str]:
        lines = [f"ENS local stack '{self.settings.stack.stack_name}' from {self.template.path}"]
        if self.front is not None:
            for route in self.front.routes:
                lines.append(f"  API front   {route.method:6} {self.api_url}{route.path} -> {route.function}")
            if not self.front.routes:
                lines.append(f"  API front   {self.api_url} (no Api events in the template)")
        lines.append(f"  local AWS   {self.aws_endpoint_url} (moto: DynamoDB, SQS, Secrets Manager, SSM)")
        for logical_id, name in self.table_names.items():
            lines.append(f"  table       {logical_id}: {name}")
        for logical_id, url in self.queue_urls.items():
            lines.append(f"  queue       {logical_id}: {url}")
        for trigger in self.triggers:
            lines.append(
                f"  SQS trigger {trigger.name} <- {trigger.queue_url.rsplit('/', 1)[-1]} "
                f"(batch {trigger.batch_size}{', partial failures' if trigger.report_batch_item_failures else ''})"
            )
        for run in self.schedules:
            lines.append(f"  schedule    {run.function.logical_id}.{run.name} every {run.rate_seconds} s")
        if self.simulator is not None:
            lines.append(
                f"  Exchange    {self.simulator.ews_url} (simulator; UI/API at {self.simulator.base_url})"
            )
        if self.push_sink is not None:
            ca = f"CA {self.push_sink.ca_bundle_path}, " if self.push_sink.ca_bundle_path else ""
            lines.append(
                f"  CNS         {self.push_sink.url} (push sink; {ca}token in secret "
                f"{self.settings.push_sink.token_secret}; pushes at {self.push_sink.control_url}/pushes)"
            )
        for demo in self.settings.demo_subscriptions:
            lines.append(
                f"  subscribed  {demo.mailbox} (static demo record, SubscriptionId {demo.subscription_id})"
            )
        for subscription in self.live_subscriptions:
            lines.append(
                f"  subscribed  {subscription.mailbox} (simulator push -> webhook, "
                f"SubscriptionId {subscription.subscription_id})"
            )
        for device in self.demo_devices:
            lines.append(
                f"  device      {device['device_id']} of {device['mailbox']} (registered through the devices API; "
                f"subscription {device['subscription']['status']})"
            )
        subscribed = [s.mailbox for s in self.live_subscriptions] + [d["mailbox"] for d in self.demo_devices]
        if subscribed and self.simulator is not None:
            lines.append(
                f"  try         curl -X POST {self.simulator.base_url}/_sim/mailboxes/"
                f"{subscribed[0]}/messages -H 'Content-Type: application/json' "
                """-d '{"from": "ceo@contoso.example", "subject": "Hello"}'"""
            )
        return lines

    # -- SQS triggers --------------------------------------------------------------------------------

    def add_trigger(self, trigger: SqsTrigger, *, start: bool | None = None) -> SqsTrigger:
        """Attach an event source mapping; it polls in the background when this stack's pollers do."""
        self.triggers.append(trigger)
        if self._start_pollers if start is None else start:
            trigger.start(wait_seconds=self.settings.stack.poll_wait_seconds)
        return trigger

    def attach_consumer(
        self,
        queue: str,
        handler: LoadedFunction | Handler,
        *,
        batch_size: int = 10,
        report_batch_item_failures: bool = True,
        start: bool | None = None,
    ) -> SqsTrigger:
        """Trigger `handler` from the template queue `queue` (logical id), like an SQS event in the template."""
        provisioned = self._provisioned()
        if queue not in provisioned.queue_urls:
            raise KeyError(
                f"no queue {queue} in {self.template.path.name}; has {sorted(provisioned.queue_urls)}"
            )
        assert self.aws is not None
        return self.add_trigger(
            SqsTrigger(
                sqs=self.aws.client("sqs"),
                queue_url=provisioned.queue_urls[queue],
                queue_arn=provisioned.queue_arn(queue),
                batch_size=batch_size,
                handler=handler,
                report_batch_item_failures=report_batch_item_failures,
                region=self.aws.region,
            ),
            start=start,
        )

    def poll_all_once(self) -> list[BatchOutcome]:
        """One poll of every trigger that is not polling in the background."""
        return [trigger.poll_once() for trigger in self.triggers if not trigger.polling]

    def run_schedules_once(self) -> list[Any]:
        """One run of every Schedule event not running in the background; what each handler returned."""
        return [run.run_once() for run in self.schedules if not run.running]

    # -- helpers -------------------------------------------------------------------------------------

    def _provisioned(self) -> ProvisionedStack:
        if self.provisioned is None:
            raise RuntimeError("LocalStack is not started")
        return self.provisioned

    def _stages(self) -> dict[str, str]:
        resolver = self._provisioned().resolver()
        stages = {"ServerlessRestApi": "Prod"}  # SAM's implicit API always deploys stage Prod
        for logical_id in self.template.logical_ids(API):
            stages[logical_id] = str(
                resolver.resolve(self.template.properties(logical_id).get("StageName", "Prod"))
            )
        return stages

    def _binary_media_types(self) -> dict[str, tuple[str, ...]]:
        return {
            api: self.template.binary_media_types(api)
            for api in ["ServerlessRestApi", *self.template.logical_ids(API)]
        }

    def _create_secrets(self, placeholders: Mapping[str, str]) -> None:
        for name, value in self.settings.secrets.items():
            self._put_secret(name, fill_placeholders(value, placeholders))
        if self.push_sink is not None:
            # The consumer reads the CNS token from Secrets Manager, as in AWS; the sink accepts this one.
            (token,) = self.push_sink.tokens
            self._put_secret(self.settings.push_sink.token_secret, token)

    def _put_secret(self, name: str, text: str) -> None:
        assert self.aws is not None
        secretsmanager = self.aws.client("secretsmanager")
        try:
            secretsmanager.create_secret(Name=name, SecretString=text)
        except secretsmanager.exceptions.ResourceExistsException:
            # A shared local AWS may hold it from an earlier stack: the settings file wins.
            secretsmanager.put_secret_value(SecretId=name, SecretString=text)

    def _start_simulator(self) -> None:
        options = self.settings.exchange_simulator
        try:
            from exchange_simulator import ExchangeSimulator  # optional: imported only when enabled
        except ImportError as error:
            raise LocalStackError(
                "[exchange_simulator] enabled = true, but the Exchange simulator cannot be imported "
                f"(package local/exchange_simulator/): {error}. Set enabled = false in the settings "
                "file to run without it."
            ) from error
        try:
            self.simulator = ExchangeSimulator(
                host=self.settings.stack.host, port=options.port, settings=dict(options.settings) or None
            )
            self.simulator.start()
        except OSError as error:
            self.simulator = None
            raise LocalStackError(
                f"the Exchange simulator cannot listen on {self.settings.stack.host}:{options.port}: {error}"
            ) from error
        except (ValueError, TypeError) as error:
            # The simulator validates its own settings: the passed-through keys of [exchange_simulator].
            self.simulator = None
            raise LocalStackError(f"[exchange_simulator]: {error}") from error
        if options.load_demo:
            self.simulator.load_demo()

    def _start_push_sink(self) -> None:
        options = self.settings.push_sink
        try:
            from push_sink import LOOPBACK, PushSink, mint_token  # optional: imported only when enabled
        except ImportError as error:
            raise LocalStackError(
                "[push_sink] enabled = true, but the push sink cannot be imported (package "
                f"local/push_sink/): {error}. Set enabled = false in the settings file to run without it."
            ) from error
        # Only the functions, in this process, push to it: loopback even when [stack] host is wider.
        host = self.settings.stack.host if self.settings.stack.host in LOOPBACK else "127.0.0.1"
        try:
            self.push_sink = PushSink(
                host=host, port=options.port, tls=options.tls, tokens=[mint_token()]
            ).start()
        except OSError as error:
            raise LocalStackError(f"the push sink cannot listen on {host}:{options.port}: {error}") from error


def with_overrides(settings: Settings, **stack_fields: Any) -> Settings:
    """A copy of settings with [stack] fields replaced, e.g. with_overrides(s, api_port=0)."""
    # model_copy(update=...) does not validate: an override is checked as the file's [stack] is.
    stack = StackSettings.model_validate({**settings.stack.model_dump(), **stack_fields})
    return settings.model_copy(update={"stack": stack})
