"""Talks to the provider chain and nothing else.

The event stream, the validator registry, the provider queries and the
publication of our endpoint live here; callers get plain data back.
"""
