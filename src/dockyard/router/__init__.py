"""The HTTP router: ``Host: <app>.<platform domain>`` (or a custom domain) to a web dyno of the app.

``server`` runs it, ``proxy`` and ``upstream`` are the data path, ``routes`` keeps the route table
fresh and cached, ``errors`` holds the H-code pages, ``accesslog`` the ``heroku[router]`` lines.
"""
