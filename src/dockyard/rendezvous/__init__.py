"""The rendezvous service: joins a ``heroku run`` / ``dockyard run`` client to its one-off dyno's
terminal, as Heroku's rendezvous does (TLS, the secret line, then raw bytes both ways)."""
