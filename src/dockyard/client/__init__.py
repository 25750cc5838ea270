"""Typed HTTP clients for the Dockyard API, used by the CLI and the data plane (agent, router)."""
