"""One module per topic; each exposes ``COMMANDS``, the click commands it adds to ``dockyard``."""
