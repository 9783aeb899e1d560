"""An expired watch (410 Gone from the real API server) makes the pod watcher relist and go on."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest
from kubernetes import client

from lbmanager.consumer_pods import POD_KEY_HASH_LABEL, PodScope
from lbmanager.errors import WatchExpired
from lbmanager.kube import KubeRest
from lbmanager.naming import key_hash
from lbmanager.pods import PodChange, PodWatcher
from tests.support.lb import create_consumer_pod, set_pod_status
from tests.support.polling import any_error, wait_until

pytestmark = pytest.mark.kube


class _StaleFirstWatch(PodWatcher):
    """Starts its first watch from resourceVersion 1, long compacted away."""

    stale_used = False

    def _relist(self) -> str:
        rv = super()._relist()
        if not self.stale_used:
            self.stale_used = True
            return "1"
        return rv


def test_watch_from_a_too_old_version_is_reported_as_expired(
    kube: client.ApiClient, namespace: str
) -> None:
    w = PodWatcher(KubeRest(kube), PodScope(namespace, POD_KEY_HASH_LABEL), lambda _: None)
    with pytest.raises(WatchExpired) as err:
        w._watch("1")
    assert err.value.status == 410
    assert err.value.transient


def test_watcher_relists_after_410_and_keeps_following_pods(
    kube: client.ApiClient, namespace: str
) -> None:
    key = "expiring-chain"
    create_consumer_pod(kube, namespace, "node", key, ips=["10.7.0.1"])
    seen: list[PodChange] = []
    lock = threading.Lock()

    def record(changes: Sequence[PodChange]) -> None:
        with lock:
            seen.extend(changes)

    w = _StaleFirstWatch(KubeRest(kube), PodScope(namespace, POD_KEY_HASH_LABEL), record)
    w.start()
    try:
        assert w.wait_synced(30)
        wait_until(
            "410 handled and relisted",
            lambda: w.stats.expired >= 1 and w.stats.relists >= 2,
            timeout=30,
            not_yet=any_error,
        )
        set_pod_status(kube, namespace, "node", ips=["10.7.0.2"], ready=False)

        def followed() -> bool:
            snap = w.snapshot() or []
            return [(p.ips, p.ready) for p in snap] == [(("10.7.0.2",), False)]

        wait_until("cache follows the pod after relisting", followed, timeout=30, not_yet=any_error)
        with lock:
            assert any(c.new is not None and c.new.ips == ("10.7.0.2",) for c in seen)
        assert w.snapshot() is not None
        assert all(p.labels[POD_KEY_HASH_LABEL] == key_hash(key) for p in w.snapshot() or [])
    finally:
        w.stop()
    assert w.stats.errors == 0
