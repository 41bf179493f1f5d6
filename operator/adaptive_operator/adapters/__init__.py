"""The only code that talks to the outside world: the Kubernetes API and Prometheus."""
