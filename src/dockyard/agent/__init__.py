"""The per-host dyno manager: desired dynos → the runtime; restarts, back-off, logs."""
