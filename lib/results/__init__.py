"""Profiles, the experiments of a profile, and the results store that keys them (specs, compute versions, audit)."""
