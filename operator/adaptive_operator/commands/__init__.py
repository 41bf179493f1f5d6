"""One module per `adaptive-operator` subcommand; each exposes `register(subparsers)`."""
