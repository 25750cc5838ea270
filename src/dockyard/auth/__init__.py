"""Authentication and authorization: pure checks over records handed in; no I/O."""
