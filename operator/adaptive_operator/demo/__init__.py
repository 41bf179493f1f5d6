"""The live demo and its load exporter (also used by the e2e suite)."""
