"""Applies the operator modes: our peers in cosmos-operator's and cosmopilot's node resources."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence

from discovery.apply.effects import Effects
from discovery.desired import DesiredChain
from discovery.errors import DiscoveryError
from discovery.operator_notify import OperatorNotifier, OperatorNotifyError, ResourceOutcome

log = logging.getLogger("discovery.service")


class OperatorApplier:
    """Writes each chain's peers into its node resource(s); remembers what carries them."""

    def __init__(
        self,
        notifier: OperatorNotifier,
        effects: Effects,
        namespaces: Sequence[str | None],
        resources: Mapping[str, str],
    ) -> None:
        self.notifier = notifier
        self.effects = effects
        self.namespaces = list(namespaces)
        # Per chain ID, the node resource named in the settings (else found by chain ID).
        self.resources = dict(resources)
        # Per chain ID: the peers hash written, the problem shown in status, and
        # (node resources written, whether they carry the current peers).
        self.written: dict[str, str] = {}
        self.problems: dict[str, str] = {}
        self.nodes: dict[str, tuple[str, bool]] = {}
        self._recheck = False

    def forget(self) -> None:
        """Leadership changed: another leader may have written since."""
        self.written.clear()
        self.problems.clear()
        self.nodes.clear()

    def recheck(self) -> None:
        """A node resource changed: look at every one again next round (not a full resync)."""
        self._recheck = True

    def take_recheck(self) -> bool:
        """Whether a node resource changed since the last call."""
        recheck, self._recheck = self._recheck, False
        return recheck

    def retain(self, chain_ids: Iterable[str]) -> None:
        """Forget chains that are gone (the memory stays bounded)."""
        current = set(chain_ids)
        for chain_id in (set(self.nodes) | set(self.problems)) - current:
            self.problems.pop(chain_id, None)
            self.nodes.pop(chain_id, None)
            self.written.pop(chain_id, None)

    async def apply(self, chain: DesiredChain, *, full: bool) -> bool:
        """Write the chain's peers into its operator node resource(s); True when they carry them."""
        target, chain_id = chain.notify.value, chain.chain_id
        if not full and self.written.get(chain_id) == chain.peers_hash:
            return True
        before = self.notifier.patches
        try:
            report = await self.notifier.notify(
                target,
                chain_id,
                list(chain.peers.entries()),
                self.namespaces,
                self.resources.get(chain_id),
            )
        except (OperatorNotifyError, DiscoveryError) as e:
            self._not_carried(chain_id)
            if self.problems.get(chain_id) != str(e):
                log.warning(
                    "operator node resource not written",
                    extra={"chain_id": chain_id, "target": target, "error": str(e)},
                )
            self.problems[chain_id] = str(e)
            self.effects.notified(chain_id, target, "failed")
            return False
        self.effects.count(target, self.notifier.patches - before, "patch")
        if report.missing:
            self._not_carried(chain_id)
            if self.problems.get(chain_id) != report.missing:
                log.warning(
                    "operator node resource missing",
                    extra={"chain_id": chain_id, "target": target, "problem": report.missing},
                )
                self.effects.notified(chain_id, target, "missing")
            self.problems[chain_id] = report.missing
            return False
        failed = [r for r in report.results if r.outcome is ResourceOutcome.FAILED]
        for r in report.results:
            if r.outcome is ResourceOutcome.PATCHED:
                self.effects.notified(chain_id, target, "done")
                log.info(
                    "operator node resource given new peers",
                    extra={
                        "chain_id": chain_id,
                        "target": target,
                        "resource": r.resource,
                        "peer_count": len(chain.peers.peers),
                        "peers_hash": chain.peers_hash[:12],
                    },
                )
            elif r.outcome is ResourceOutcome.FAILED:
                self.effects.notified(chain_id, target, "failed")
                self.effects.metrics.ops.kubernetes_write_errors.labels(resource=target).inc()
                log.warning(
                    "operator node resource not written",
                    extra={
                        "chain_id": chain_id,
                        "target": target,
                        "resource": r.resource,
                        "error": r.detail,
                    },
                )
        self.nodes[chain_id] = (report.resources(), not failed)
        if failed:
            self.written.pop(chain_id, None)
            self.problems[chain_id] = "; ".join(f"{r.resource}: {r.detail}" for r in failed)
            return False
        self.problems.pop(chain_id, None)
        self.written[chain_id] = chain.peers_hash
        return True

    def _not_carried(self, chain_id: str) -> None:
        self.written.pop(chain_id, None)
        self.nodes[chain_id] = ("", False)
