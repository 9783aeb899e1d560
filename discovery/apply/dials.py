"""Applies `dial` mode: tells each ready consumer node its peers with `dial_peers`."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

from discovery.apply.effects import Effects
from discovery.desired import DesiredChain
from discovery.errors import DiscoveryError
from discovery.faults import Part
from discovery.notify import DialOutcome, NotifyError, PeerDialer
from lbmanager.consumer_pods import PodInfo

log = logging.getLogger("discovery.service")


def live_dial_memory(
    dialed: Mapping[str, str], pods: Mapping[str, Sequence[PodInfo]]
) -> dict[str, str]:
    """The dial memory (pod UID -> peers hash) of the pods that exist now. Pure."""
    live = {p.uid for found in pods.values() for p in found}
    return {uid: h for uid, h in dialed.items() if uid in live}


class DialApplier:
    """Dials each ready pod of a chain once per peers hash; remembers per pod UID."""

    def __init__(self, dialer: PeerDialer, effects: Effects, leading: Callable[[], bool]) -> None:
        self.dialer = dialer
        self.effects = effects
        self.leading = leading
        # Pod UID -> peers hash dialled (pruned to the pods that exist).
        self.dialed: dict[str, str] = {}

    def forget(self) -> None:
        """Leadership changed: another leader may have dialled since."""
        self.dialed.clear()

    def retain(self, pods: Mapping[str, Sequence[PodInfo]]) -> None:
        """Keep memory only for pods that exist (the memory stays bounded)."""
        self.dialed = live_dial_memory(self.dialed, pods)

    async def apply(self, chain: DesiredChain, pods: Sequence[PodInfo]) -> bool:
        """Dial the served `pods` of `chain` that have not heard these peers; True when done."""
        clean = True
        entries = list(chain.peers.entries())
        for pod in pods:
            if not pod.ready or not pod.ips or self.dialed.get(pod.uid) == chain.peers_hash:
                continue
            where = f"pod {pod.namespace}/{pod.name}"
            if not self.leading():  # dial_peers is a write too: only while the Lease is ours
                return False
            try:
                result = await self.dialer.dial(pod.ips[0], chain.chain_id, entries)
            except (NotifyError, DiscoveryError) as e:
                self.effects.fault(Part.CONSUMER_NODES, e, where)
                log.warning(
                    "consumer node not dialed",
                    extra={
                        "chain_id": chain.chain_id,
                        "pod": f"{pod.namespace}/{pod.name}",
                        "error": str(e),
                    },
                )
                self.effects.notified(chain.chain_id, "dial", "failed")
                clean = False
                continue
            self.effects.faults.clear(Part.CONSUMER_NODES, where)
            if result.outcome is DialOutcome.DIALED:
                self.effects.notified(chain.chain_id, "dial", "done")
                self.dialed[pod.uid] = chain.peers_hash
                log.info(
                    "consumer node dialed its peers",
                    extra={
                        "chain_id": chain.chain_id,
                        "pod": f"{pod.namespace}/{pod.name}",
                        "peer_count": len(entries),
                    },
                )
            elif entries:
                # Catching up or not answering for this chain: try again later.
                self.effects.notified(chain.chain_id, "dial", "waiting")
                clean = False
            else:
                self.dialed[pod.uid] = chain.peers_hash
        return clean
