"""The ``dockyard`` command: Heroku's ``topic:command`` names over the Platform API client.

``main.py`` is the single exit point; one module per topic under ``commands/``. This package imports
only ``dockyard.client`` and the leaves (types, errors, settings, _util), never the server.
"""
