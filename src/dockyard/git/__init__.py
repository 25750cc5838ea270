"""Git entry points: bare repositories per app, the pre-receive hook that deploys, and smart
HTTP."""
