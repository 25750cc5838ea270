"""Use cases: the only code that sequences store → build → slug → release → data plane."""
