"""ENS benchmarks: `make bench` runs them all and prints their figures (see docs/performance.md)."""
