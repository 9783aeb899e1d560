"""One log line per change that matters between two rounds' decisions (never per round)."""

from __future__ import annotations

import logging

from discovery.desired import DesiredCluster
from discovery.metrics import ServiceMetrics
from discovery.types import OperatorAddress

log = logging.getLogger("discovery.service")


class ChangeLog:
    """Remembers the last decision and logs what differs: chains, peers, problems."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self.metrics = metrics
        self.last: DesiredCluster | None = None
        self.logged_problems: frozenset[str] = frozenset()
        # Compat mode: validators whose moniker-derived node ID was logged and counted.
        self.moniker_node_ids_seen: set[OperatorAddress] = set()

    def observe(self, desired: DesiredCluster) -> None:
        self._log_changes(desired)
        self._note_moniker_node_ids(desired)
        self.last = desired

    def _log_changes(self, desired: DesiredCluster) -> None:
        before = {c.chain_id: c for c in self.last.chains} if self.last else {}
        after = {c.chain_id: c for c in desired.chains}
        for chain_id in sorted(after.keys() - before.keys()):
            c = after[chain_id]
            log.info(
                "chain exposed",
                extra={
                    "chain_id": chain_id,
                    "consumer_id": c.consumer_id,
                    "p2p_port": c.allocation.ports.p2p,
                    "peer_count": len(c.peers.peers),
                },
            )
        for chain_id in sorted(before.keys() - after.keys()):
            log.info("chain withdrawn", extra={"chain_id": chain_id})
        for chain_id in sorted(after.keys() & before.keys()):
            old, new = before[chain_id], after[chain_id]
            if old.peers != new.peers:
                left = ",".join(
                    sorted(
                        {
                            f"{x.moniker or x.operator_address}:{x.reason}"
                            for x in new.peers.left_out
                        }
                    )
                )
                log.info(
                    "peers changed",
                    extra={
                        "chain_id": chain_id,
                        "peer_count": len(new.peers.peers),
                        "peers_hash": new.peers_hash[:12],
                        "left_out": left,
                        "height": desired.height,
                    },
                )
        problems = frozenset(desired.problems)
        for p in sorted(problems - self.logged_problems):
            log.warning("problem", extra={"problem": p})
        self.logged_problems = problems

    def _note_moniker_node_ids(self, desired: DesiredCluster) -> None:
        """Compat mode: log and count, once per validator, a node ID derived from a moniker."""
        monikers = {v.operator_address: v.moniker for v in desired.state.validators}
        for chain in desired.chains:
            for operator in chain.moniker_node_ids:
                if operator in self.moniker_node_ids_seen:
                    continue
                self.moniker_node_ids_seen.add(operator)
                self.metrics.moniker_node_ids.inc()
                log.warning(
                    "INSECURE: peer node ID derived from the validator's public moniker "
                    "(it publishes no node=; compat ics-operator)",
                    extra={
                        "operator": operator,
                        "moniker": monikers.get(operator, ""),
                        "chain_id": chain.chain_id,
                    },
                )
