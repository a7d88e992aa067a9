"""Operator tools above the Faust app: the CLI, the demo, bench, chaos, replay, explain, generate, and the
worker-process supervisor they share."""
