"""Talks to Kubernetes: LoadBalancer Service ports, EndpointSlices, consumer pods, MetalLB pools."""
