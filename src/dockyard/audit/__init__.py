"""The tamper-evident audit log: an append-only RFC 9162 Merkle log of events, kept by a separate writer
process, with signed C2SP checkpoints, witnesses and verification. See docs/audit.md."""
