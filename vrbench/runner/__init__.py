"""Executors that take a suite's pending jobs to completion (local pool; Slurm to come)."""
