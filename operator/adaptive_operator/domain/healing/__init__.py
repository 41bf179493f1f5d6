"""Healing: the anomaly detector over health metrics and the ladder of remedies with its rails."""
