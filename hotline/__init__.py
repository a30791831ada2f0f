"""The application shell: settings, logging, pipeline wiring and the `hotline` CLI."""
