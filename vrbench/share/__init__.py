"""Share results between machines: bundles (``vrbench export`` / ``vrbench import``), the provenance of imported
runs, and jobs that arrive with a second, different result (conflicts). See docs/leaderboard.md.

Imports only the standard library and duckdb (no torch), like the store it builds on.
"""
