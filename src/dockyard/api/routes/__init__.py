"""One module per URL segment of the Platform API."""
