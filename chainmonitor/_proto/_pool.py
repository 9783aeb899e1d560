"""The private descriptor pool the generated modules register into (see the package docstring)."""

from google.protobuf import any_pb2, descriptor_pool

POOL = descriptor_pool.DescriptorPool()
# Well-known types the minimal protos import must be in the same pool.
POOL.AddSerializedFile(any_pb2.DESCRIPTOR.serialized_pb)
