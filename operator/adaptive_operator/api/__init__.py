"""Pydantic models of the custom resources: the one source of the CRD schemas."""
