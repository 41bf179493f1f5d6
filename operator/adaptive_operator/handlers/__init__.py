"""kopf wiring: one module per resource."""
