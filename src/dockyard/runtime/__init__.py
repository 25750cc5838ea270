"""Runtimes run dynos: the ``Runtime`` protocol and its backends (``process`` now; ``runc`` and
``kubernetes`` plug into the same protocol)."""
