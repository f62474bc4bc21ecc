"""Benchmarks of kgen's generated apps against other ways of running the same workload.

`python -m bench run --records N --repeat R --systems kgen,copy` (see bench/README.md).
"""
