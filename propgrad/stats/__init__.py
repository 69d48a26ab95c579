"""The mathematics: pure functions on tensors, no plugins, models or I/O.

``gradient`` (the expected property gradient magnitude), ``permutation`` (the permutation test)
with ``null_statistics`` (its kernels) and ``permutations`` (its seeded permutation generator),
``flips`` (decision flips along a sequence) and ``coercion`` (outputs and values to tensors).
"""
