"""Adaptive Operator: scales Kubernetes workloads ahead of demand and heals them."""

__version__ = "0.1.0"
