"""vrbench: benchmark harness and leaderboard runner for visual reprogramming and CLIP prompt learning."""

__version__ = "0.1.0"
