"""Talks to the provider chain: event stream, validator registry, provider queries, endpoint publication."""
