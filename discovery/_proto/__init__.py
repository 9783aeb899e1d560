"""Protobuf modules generated from `proto/ics/` by `make proto`; never edit them by hand.

They register into the private descriptor pool of `_pool`, as chainmonitor's
generated modules do, so nothing this package defines can clash with a
definition another library puts in the process-wide pool.
"""
