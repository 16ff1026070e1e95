"""Fidelity to the teacher on held-out pairs, and the before/after grid."""
