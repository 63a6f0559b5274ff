"""A local simulator of the Toksta Public API v1 (aiohttp), for tests and benchmarks.

Run it with `python -m worker.sim` (or `toksta-worker sim`); drive it from tests with
`worker.sim.testing.SimulatorProcess` and `SimAdmin`.
"""
