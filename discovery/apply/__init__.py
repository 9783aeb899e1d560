"""The service's appliers: one per effect on the world, each owning its memory and errors.

`discovery.desired` decides what the cluster should look like (pure); the
service loop hands each round's decision to these, in order:

- `configmaps.ConfigMapApplier`: the peers ConfigMaps (write differences,
  delete stale ones).
- `restarts.RestartApplier`: roll consumer workloads (`restart` mode), after
  the ConfigMap, held down.
- `dials.DialApplier`: tell running nodes with `dial_peers` (`dial` mode).
- `operators.OperatorApplier`: the operators' node resources
  (`cosmos-operator`, `cosmopilot` modes).
- `endpoint.EndpointPublisher`: our own endpoint on chain (`edit-validator`),
  gated and backed off.

Each remembers only what the current leader wrote (`forget()` on every
leadership change), reports through `effects.Effects` (metrics, faults, write
counts, wake-ups) and never raises for one chain's failure: it returns False
("retry this round later") and says why in one log line per change.
"""
