"""Scenarios that ``omnigw simulate`` runs on :mod:`routing.simulation`. Each is pure and
deterministic for a seed: no I/O and no wall clock."""
