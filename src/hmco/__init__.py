"""hmco."""
