"""Pruning schedules and resumable traces (Iterative Pruning and the baselines), with prefix caching."""
