"""Slugs: read-only SquashFS images of a built app, addressed by SHA-256, and where they are kept."""
