"""Benchmarks: `python -m core bench` (see benchmarks/bench.py and docs/performance.md).

This package lives outside `core/` on purpose: the legacy baseline model
(`legacy_write_path`) reproduces the old platform's float arithmetic, which the house
style forbids inside core.
"""
