"""Test-only helpers the product never imports: tiny models built offline, fakes.

Tests import them as `testlib.*` (pytest puts `tests/gpu_server` on the path); benchmarks and
scripts put `tests/gpu_server` on `sys.path` first.
"""
