"""The Platform API: an ASGI app with Heroku Platform API v3 shapes."""
