"""Verdict rules: each claim's decision, computed from stored results with its statistic.

Chapters call these functions; no verdict is typed into a chapter. One module per
group of chapters: ``collapse`` (C1, C2, R3), ``transition`` (C3, C4, C5, R2),
``perturbation`` (R1, C6, C7); the readout of pruned networks: ``pruned_transitions`` (each pruned network's
transition and what pruning did to it), ``mechanism`` (C5b, C5c), ``predictions`` (P1, P1b).
"""
