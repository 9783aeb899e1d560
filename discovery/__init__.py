"""The product's core: pure domain logic (ports, endpoints, node keys, peers) and the service that wires it."""
