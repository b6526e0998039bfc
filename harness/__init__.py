"""The harness that tests and benchmarks share; the product never imports it.

- `postgres`: a temporary PostgreSQL cluster on loopback, for the project store's tests and bench.
"""
