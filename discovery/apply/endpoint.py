"""Publishes our own endpoint on chain (`edit-validator`), gated, backed off, leader only.

"Publish" in this project means exactly this: putting our LoadBalancer
endpoint into our validator's description on the provider chain. The ingress
comes from `discovery.own_endpoint.IngressWatch`; whether the description
needs a change is `own_endpoint.endpoint_update` (pure); whether to send now
is `publish_gate.publish_refusal` (pure: the address must hold still for the
hold-down, publications are spaced by the minimum interval); the fee cap and
the retry delays are settings. Signing and broadcasting run in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from chainmonitor.errors import ChainMonitorError, ChainUnavailable, FeeTooHigh, InsufficientFees
from chainmonitor.types import ChainSnapshot
from discovery.apply.effects import Effects, Wake
from discovery.endpoints import EndpointPolicy
from discovery.errors import DiscoveryError, ServiceError
from discovery.faults import Part, publish_retry_delay
from discovery.own_endpoint import IngressWatch, endpoint_update
from discovery.publish_gate import MAX_FEE, Refusal, RefusalLog, publish_refusal
from discovery.settings import Settings
from discovery.types import NodeId, OperatorAddress

if TYPE_CHECKING:
    from chainmonitor.publish import ChainConnection

log = logging.getLogger("discovery.service")


def publish_connections(settings: Settings) -> list[ChainConnection]:
    """How to reach each provider gRPC endpoint to sign through, in the configured order."""
    from chainmonitor.publish import ChainConnection  # cosmpy: imported only when publishing

    return [
        ChainConnection(
            grpc_url=target,
            fee_denom=settings.publish_fee_denom,
            gas_price=settings.publish_gas_price,
            gas_adjustment=settings.publish_gas_adjustment,
            max_fee=settings.publish_max_fee,
        )
        for target in settings.grpc_targets()
    ]


class EndpointPublisher:
    """Keeps our validator's published endpoint equal to our LoadBalancer's ingress."""

    def __init__(
        self,
        settings: Settings,
        effects: Effects,
        *,
        operator: str,
        policy: EndpointPolicy,
        node_id: NodeId | None,
        ingress_watch: IngressWatch | None,
        leading: Callable[[], bool],
    ) -> None:
        self.settings = settings
        self.effects = effects
        self.operator = OperatorAddress(operator)
        self.policy = policy
        self.node_id = node_id
        self.ingress_watch = ingress_watch
        self.leading = leading
        # The ingress seen and since when (the hold-down counts from there).
        self.ingress_seen: tuple[str, ...] | None = None
        self.ingress_since = 0.0
        # The publication in flight, when the next try may be, and the failures in a row.
        self.task: asyncio.Task[None] | None = None
        self.retry_at = 0.0
        self.failures = 0
        # The last publication sent, and the refusal last reported (once per change).
        self.last_sent_at: float | None = None
        self.refusals = RefusalLog()
        self.refusal_wake: asyncio.TimerHandle | None = None

    def ingress_changed(self, ingress: tuple[str, ...]) -> None:
        """The LoadBalancer's ingress is `ingress` now (the hold-down restarts on a change)."""
        if ingress != self.ingress_seen:
            self.ingress_seen, self.ingress_since = ingress, self.effects.clock()

    def forget(self) -> None:
        """Leadership changed: cancel a publication in flight and every wait."""
        if self.task is not None and not self.task.done():
            self.task.cancel()
        if self.refusal_wake is not None:
            self.refusal_wake.cancel()
        self.refusal_wake = None
        self.retry_at = 0.0
        self.refusals = RefusalLog()

    async def close(self) -> None:
        """At shutdown: cancel and wait for a publication in flight."""
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task

    def maybe_publish(self, snapshot: ChainSnapshot) -> None:
        """Start a publication when the description lags the ingress and the gate allows."""
        watch = self.ingress_watch
        if not self.settings.publish_endpoint or watch is None or watch.ingress is None:
            return
        self.ingress_changed(watch.ingress)  # seen before its callback ran
        if self.task is not None and not self.task.done():
            return
        clock = self.effects.clock
        if clock() < self.retry_at:
            return
        ours = snapshot.validator(self.operator)
        if ours is None:
            return
        try:
            details = endpoint_update(
                watch.ingress, ours.description.details, self.policy, self.node_id
            )
        except DiscoveryError as e:
            self.effects.metrics.ops.endpoint_publications.labels(outcome="failed").inc()
            log.warning("our endpoint cannot be published", extra={"error": str(e)})
            self.retry_at = clock() + self.settings.resync_interval
            return
        if details is None:
            self.refusals.changed(None)
            return
        s = self.settings
        refusal = publish_refusal(
            now=clock(),
            address_since=self.ingress_since,
            last_published_at=self.last_sent_at,
            hold_down=s.publish_hold_down,
            min_interval=s.publish_min_interval,
        )
        if refusal is not None:
            self._refuse(refusal)
            if refusal.retry_at is not None:
                if self.refusal_wake is not None:
                    self.refusal_wake.cancel()
                self.refusal_wake = self.effects.wake_later(
                    self.effects.delay_until(refusal.retry_at), Wake.PUBLISH
                )
            return
        self.task = asyncio.create_task(self._publish(watch.ingress), name="publish-endpoint")
        self.task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        """An error no layer classified (a bug) still fails publishing, with backoff, loudly."""
        if task.cancelled() or task.exception() is None:
            return
        error = task.exception()
        assert error is not None
        self.failures += 1
        self.retry_at = self.effects.clock() + publish_retry_delay(
            self.failures, transient=False, resync_interval=self.settings.resync_interval
        )
        self.effects.metrics.ops.endpoint_publications.labels(outcome="failed").inc()
        self.effects.fault(Part.PUBLISHING, error)

    def _refuse(self, refusal: Refusal) -> None:
        """Report a refusal to publish: one log line and one count per change of reason."""
        if self.refusals.changed(refusal):
            self.effects.metrics.ops.endpoint_publication_refusals.labels(
                reason=refusal.reason
            ).inc()
            log.info(
                "our endpoint not published yet",
                extra={"reason": refusal.reason, "detail": refusal.detail},
            )

    async def _publish(self, ingress: tuple[str, ...]) -> None:
        from chainmonitor.keys import load_signing_key
        from chainmonitor.publish import EndpointPublisher as ChainEndpointPublisher

        s = self.settings
        policy = self.policy
        node_id = self.node_id
        clock = self.effects.clock

        def decide(current: Any) -> str | None:
            # Runs in the signing thread just before the transaction is built: a
            # replica that lost the Lease meanwhile sends nothing.
            if not self.leading():
                return None
            return endpoint_update(ingress, current.details, policy, node_id)

        try:
            key = await asyncio.to_thread(
                load_signing_key, file=s.publish_key_file, env=s.publish_key_env
            )
            if s.publish_authz_granter is not None and key.controls(self.operator):
                raise ServiceError(
                    "publish_authz_granter",
                    "is set, but the signing key is the operator's own key: unset it, or "
                    "give the service the grantee key",
                )
            outcome = None
            last: ChainUnavailable | None = None
            # Each gRPC endpoint in turn while they are unreachable; any other error is
            # the chain's answer and would be the same on every node.
            for connection in publish_connections(s):
                try:
                    outcome = await asyncio.to_thread(
                        ChainEndpointPublisher(connection, key).publish_details,
                        self.operator,
                        decide,
                    )
                    break
                except ChainUnavailable as e:
                    last = e
            if outcome is None:
                raise last or ChainUnavailable("no provider gRPC endpoint")
        except FeeTooHigh as e:
            # Permanent for these settings: refused (once), tried again only at a resync.
            self.retry_at = clock() + s.resync_interval
            self._refuse(Refusal(MAX_FEE, str(e)))
            return
        except (ChainMonitorError, DiscoveryError) as e:
            self.failures += 1
            delay = publish_retry_delay(
                self.failures,
                transient=bool(getattr(e, "transient", False)),
                resync_interval=s.resync_interval,
            )
            self.retry_at = clock() + delay
            self.effects.fault(Part.PUBLISHING, e)
            error = str(e)
            if isinstance(e, InsufficientFees):
                error += (
                    f" (publish_gas_price is {s.publish_gas_price:g}{s.publish_fee_denom}: "
                    "raise it to the provider nodes' minimum-gas-prices)"
                )
            self.effects.metrics.ops.endpoint_publications.labels(outcome="failed").inc()
            log.warning(
                "publishing our endpoint failed",
                extra={"error": error, "transient": e.transient, "retry_in": round(delay, 1)},
            )
            self.effects.wake_later(delay, Wake.INGRESS)
            return
        self.failures = 0
        self.effects.faults.clear(Part.PUBLISHING)
        self.refusals.changed(None)
        if outcome.sent:
            self.last_sent_at = clock()
            self.effects.metrics.ops.endpoint_publications.labels(outcome="sent").inc()
            log.info(
                "published our endpoint on chain",
                extra={
                    "tx_hash": outcome.tx_hash,
                    "height": outcome.height,
                    "ingress": ",".join(ingress),
                },
            )
