"""Run every benchmark and print its figures: `make bench`."""

from bench import cold_import, parse_reply, webhook_handling

for benchmark in (parse_reply, cold_import, webhook_handling):
    print("\n".join(benchmark.run()), end="\n\n", flush=True)
