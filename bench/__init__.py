"""Benchmarks of the worker against the API simulator; each script writes its section of RESULTS.md."""
