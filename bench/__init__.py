"""Benchmarks: scripts that print ratios measured in one run (never asserted in tests)."""
