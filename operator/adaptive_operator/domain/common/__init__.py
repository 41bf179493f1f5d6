"""What every capability shares: status conditions, label selectors, namespaces, leadership."""
