"""Run every benchmark and print its figures: `make bench`."""

from bench import (
    cold_import,
    consumer_cold_import,
    consumer_latency,
    consumer_throughput,
    devices_api,
    parse_reply,
    watchdog_soak,
    webhook_handling,
)

# consumer_throughput prints the cost per million mails too: it is worked out from that run.
for benchmark in (
    parse_reply,
    cold_import,
    webhook_handling,
    consumer_cold_import,
    consumer_throughput,
    consumer_latency,
    devices_api,
    watchdog_soak,
):
    print("\n".join(benchmark.run()), end="\n\n", flush=True)
