"""Atomic-test emulation: scenario files, their rendering to telemetry, the validation matrix."""
