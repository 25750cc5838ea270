"""Logs: one ordered stream per app, in Logplex's line format."""
