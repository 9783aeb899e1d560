"""The private descriptor pool the generated modules register into (see the package docstring)."""

from google.protobuf import descriptor_pool

POOL = descriptor_pool.DescriptorPool()
