"""Scaling: the HPA v2 algorithm, the predictive floor on top of it, and the replay simulator."""
