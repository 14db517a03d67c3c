"""The `execution-engine` command: one module per subcommand, dispatched by `main`."""
