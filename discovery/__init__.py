"""The product core: pure domain logic (ports, endpoints, node keys, peers) and its service."""
