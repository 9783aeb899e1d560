"""Protobuf modules generated from `proto/` by `make proto`; never edit them by hand.

They register into the private descriptor pool of `_pool`, not the process-wide
one, because cosmpy registers the full upstream definitions of the same
`cosmos.*` messages there and two different definitions of one name cannot share
a pool.
"""
