"""Several clusters side by side, each its own etcd; stopping leaves no process behind."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.conftest import ControlPlaneFactory
from tests.support.kube import start_control_plane
from tests.support.procs import pids_alive, processes_mentioning

pytestmark = pytest.mark.kube


def test_named_control_planes_are_independent(control_planes: ControlPlaneFactory) -> None:
    alice, bob = control_planes("alice"), control_planes("bob")
    assert control_planes("alice") is alice  # started once, shared
    assert alice.api_port != bob.api_port
    a, b = client.CoreV1Api(alice.admin_client()), client.CoreV1Api(bob.admin_client())
    a.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="only-in-alice")))
    try:
        with pytest.raises(ApiException) as err:
            b.read_namespace("only-in-alice")
        assert err.value.status == 404
        assert a.read_namespace("only-in-alice").metadata.name == "only-in-alice"
    finally:
        a.delete_namespace("only-in-alice")


def test_stopping_a_control_plane_leaves_no_process(tmp_path: Path) -> None:
    plane = start_control_plane("teardown", tmp_path / "cp")
    pids = plane.pids
    assert len(pids) == 3
    assert pids_alive(pids) == pids
    assert processes_mentioning(str(tmp_path)) != []
    plane.stop()
    assert pids_alive(pids) == []
    assert processes_mentioning(str(tmp_path)) == []
