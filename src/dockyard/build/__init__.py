"""Builds: the buildpack protocol, the pipeline that turns a source tree into a slug, and the
built-in buildpacks."""
