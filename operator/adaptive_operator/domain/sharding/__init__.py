"""Sharding: hash slots, the resize and rebalancing planner, migrations, manifests and status."""
