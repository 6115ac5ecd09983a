"""One function of the template in a process of its own, as one warm Lambda container.

The benchmark's own process also runs moto, the Exchange simulator and the push sink, whose threads
would share the GIL with the function under test; here the function has an interpreter to itself,
and its peak RSS is the function's alone (plus the template loader) (what Lambda reports as "Max Memory Used").

`RemoteFunction(logical_id)` starts `python -m bench.lambda_worker <logical id> <log file>` with this
process's environment (the local stack's variables), and is a plain `handler(event, context)`
callable for `SqsTrigger`. Each invocation is one JSON line each way over the pipes; the function's
stdout (Powertools logs, EMF metrics) goes to the log file. Per invocation the worker reports its
duration, peak RSS, log bytes written and the AWS API calls the function made.
"""

from __future__ import annotations

import contextlib
import cProfile
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def counting_aws_calls() -> Iterator[Counter[str]]:
    """Every boto3 API call made in this process while inside, as "service.Operation" counts."""
    from botocore.client import BaseClient

    calls: Counter[str] = Counter()
    original = BaseClient._make_api_call

    def counted(client: BaseClient, operation: str, params: Any) -> Any:
        calls[f"{client.meta.service_model.service_name}.{operation}"] += 1
        return original(client, operation, params)

    BaseClient._make_api_call = counted
    try:
        yield calls
    finally:
        BaseClient._make_api_call = original


@dataclass
class Invocation:
    seconds: float
    cpu_seconds: float
    peak_kib: int  # VmHWM after the invocation: the process's peak so far
    log_bytes: int
    aws_calls: dict[str, int]
    result: Any


@dataclass
class RemoteFunction:
    logical_id: str
    invocations: list[Invocation] = field(default_factory=list)
    ready_kib: int = 0
    _process: subprocess.Popen[str] | None = field(default=None, init=False, repr=False)
    _directory: tempfile.TemporaryDirectory[str] | None = field(default=None, init=False, repr=False)

    def start(self) -> RemoteFunction:
        self._directory = tempfile.TemporaryDirectory(prefix="ens-bench-worker-")
        log_file = Path(self._directory.name) / "function.log"
        self.stderr_path = Path(self._directory.name) / "stderr.log"
        with self.stderr_path.open("w") as stderr:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "bench.lambda_worker", self.logical_id, str(log_file)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                cwd=REPO,
                env=dict(os.environ),
            )
        # "ready": the handler module is imported (the cold start's init phase)
        self.ready_kib = int(self._read()["peak_kib"])
        return self

    def __call__(self, event: dict[str, Any], context: Any = None) -> Any:
        invocation = self.invoke(event)
        return invocation.result

    def invoke(self, event: dict[str, Any]) -> Invocation:
        assert self._process is not None
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps(event, separators=(",", ":")) + "\n")
        self._process.stdin.flush()
        answer = self._read()
        invocation = Invocation(
            seconds=answer["seconds"],
            cpu_seconds=answer["cpu_seconds"],
            peak_kib=answer["peak_kib"],
            log_bytes=answer["log_bytes"],
            aws_calls=answer["aws_calls"],
            result=answer["result"],
        )
        self.invocations.append(invocation)
        return invocation

    def _read(self) -> dict[str, Any]:
        assert self._process is not None
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError(f"the {self.logical_id} worker died:\n{self.stderr_path.read_text()[-4000:]}")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"{self.logical_id} raised: {answer['error']}")
        return answer

    def stop(self) -> None:
        if self._process is not None:
            assert self._process.stdin is not None
            self._process.stdin.close()
            self._process.wait(timeout=30)
            self._process = None
        if self._directory is not None:
            self._directory.cleanup()
            self._directory = None


def memory_kib(field: str = "VmHWM") -> int:
    """This process's peak (VmHWM) or current (VmRSS) resident set, from /proc (Linux).

    Not ru_maxrss: Linux carries it over from the parent across fork and exec, so a child of a big
    benchmark process would report the parent's size.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(logical_id: str, log_path: str) -> None:
    protocol = sys.stdout
    log = open(log_path, "w", encoding="utf-8")  # noqa: SIM115 - lives as long as the worker
    # Before the handler is imported: Powertools' loggers keep the sys.stdout they find then.
    sys.stdout = log

    # ENS_BENCH_PROFILE=<file>: cProfile every invocation into that file, to see where the time goes.
    # cProfile sees one thread only: mailboxes are then handled one after another, in this thread.
    profile_path = os.environ.get("ENS_BENCH_PROFILE")
    if profile_path:
        os.environ["EWS_MAX_CONCURRENCY"] = "1"

    from ens_local.functions import load_template_function
    from ens_local.template import Template

    function = load_template_function(
        Template.load(), logical_id, region=os.environ.get("AWS_REGION", "eu-west-1")
    )
    protocol.write(
        json.dumps({"ready": True, "peak_kib": memory_kib(), "rss_kib": memory_kib("VmRSS")}) + "\n"
    )
    protocol.flush()
    profiler = cProfile.Profile() if profile_path else None
    with counting_aws_calls() as calls, profiler or contextlib.nullcontext():
        for line in sys.stdin:
            event = json.loads(line)
            before = Counter(calls)
            log.flush()
            log_before = log.tell()
            started, cpu_started = time.perf_counter(), _cpu_seconds()
            try:
                result = function.invoke(event)
            except Exception as error:  # the parent reports it; a benchmark must not go on silently
                protocol.write(json.dumps({"error": f"{type(error).__name__}: {error}"}) + "\n")
                protocol.flush()
                continue
            seconds = time.perf_counter() - started
            log.flush()
            answer = {
                "seconds": seconds,
                "cpu_seconds": _cpu_seconds() - cpu_started,
                "peak_kib": memory_kib(),
                "log_bytes": log.tell() - log_before,
                "aws_calls": dict(calls - before),
                "result": result,
            }
            protocol.write(json.dumps(answer) + "\n")
            protocol.flush()
    if profiler is not None and profile_path:
        profiler.dump_stats(profile_path)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
