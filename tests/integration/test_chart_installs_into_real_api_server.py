"""The chart installs for real: `helm upgrade --install` into the test control plane.

The real kube-apiserver validates every rendered object (schemas, defaults,
admission), Pod Security Admission at the `restricted` level judges the pod
template when the ReplicaSet controller creates the pods, and Helm reads the
server's API versions (ServiceMonitor only when its CRD is there). Installed
with the default values and with each example (alice, bob, charlie).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, dynamic
from kubernetes.client.exceptions import ApiException

from tests.conftest import create_namespace
from tests.support.helm import EXAMPLE_VALUES, HelmFailed, Values, find, one, run_helm, values
from tests.support.helm_fixtures import RESTRICTED, ChartReleases, label
from tests.support.polling import any_error, wait_until

pytestmark = [pytest.mark.kube, pytest.mark.helm]

OPERATOR = "cosmosvaloper1qqqsyqcyq5rqwzqfpg9scrgwpugpzysnxz90a2"
RPC = ["http://provider-node.provider.svc.cluster.local:26657"]
BASE = {
    "provider.operatorAddress": OPERATOR,
    "provider.rpcUrls": RPC,
    # The namespace goes away after the test; nothing must outlive it.
    "loadBalancer.keepOnUninstall": False,
}
SELECTOR = "app.kubernetes.io/name=ics-validator,app.kubernetes.io/instance=ics"


def _base(chart_releases: ChartReleases) -> dict[str, Any]:
    """BASE with a consumer namespace of the test's own (deleted after it)."""
    return {**BASE, "consumers.namespace": chart_releases.new_namespace("consumers")}


def _pods_created(api: client.ApiClient, namespace: str, count: int) -> list[Any]:
    """Wait until the ReplicaSet controller created `count` pods; explain a refusal."""
    core = client.CoreV1Api(api)
    apps = client.AppsV1Api(api)

    def created() -> bool:
        return len(core.list_namespaced_pod(namespace, label_selector=SELECTOR).items) >= count

    try:
        wait_until(
            f"{count} pod(s) in {namespace}", created, timeout=45, interval=0.2, not_yet=any_error
        )
    except Exception as e:
        problems = [
            f"{c.type}: {c.message}"
            for rs in apps.list_namespaced_replica_set(namespace).items
            for c in rs.status.conditions or []
        ]
        raise AssertionError(f"pods not created: {problems}") from e
    return list(core.list_namespaced_pod(namespace, label_selector=SELECTOR).items)


def _assert_on_server(api: client.ApiClient, objects: list[dict[str, Any]]) -> None:
    """Every object helm says it installed exists on the API server."""
    dyn = dynamic.DynamicClient(api)  # type: ignore[no-untyped-call]
    for obj in objects:
        meta = obj["metadata"]
        resource = dyn.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
        found = resource.get(name=meta["name"], namespace=meta.get("namespace"))
        assert found.metadata.uid, f"{obj['kind']} {meta['name']} missing"


def test_default_values_install_and_pass_restricted_pod_security(
    chart_releases: ChartReleases, kube: client.ApiClient, namespace: str
) -> None:
    label(kube, namespace, RESTRICTED)
    # The defaults name the consumer namespace `consumers`, which must exist first
    # (this is the one test that uses that fixed name; wait out an earlier deletion).
    core = client.CoreV1Api(kube)
    wait_until(
        "no namespace named consumers",
        lambda: "consumers" not in {n.metadata.name for n in core.list_namespace().items},
        timeout=60,
        not_yet=any_error,
    )
    with pytest.raises(HelmFailed) as missing:
        chart_releases.install(values(**BASE))
    assert 'namespaces "consumers" not found' in missing.value.stderr
    create_namespace(kube, "consumers")
    chart_releases.extra_namespaces.append("consumers")
    notes = chart_releases.install(values(**BASE))
    assert "STATUS: deployed" in notes

    pods = _pods_created(kube, namespace, 1)
    spec = pods[0].spec
    assert spec.service_account_name == "ics-ics-validator"
    assert spec.security_context.run_as_non_root is True
    assert spec.containers[0].security_context.read_only_root_filesystem is True

    # The LoadBalancer in a namespace of its own, created by Helm.
    lb_ns = chart_releases.lb_namespace()
    assert core.read_namespace(lb_ns).status.phase == "Active"
    assert not [
        s for s in core.list_namespaced_service(namespace).items if s.spec.type == "LoadBalancer"
    ]
    svc = client.CoreV1Api(kube).read_namespaced_service("p2p-loadbalancer", lb_ns)
    assert svc.spec.type == "LoadBalancer"
    assert svc.spec.selector == {"this-will-not-match": "anything"}
    assert [(p.name, p.port, p.protocol) for p in svc.spec.ports] == [("placeholder", 1, "TCP")]
    assert svc.spec.allocate_load_balancer_node_ports is False

    objects = chart_releases.manifest()
    _assert_on_server(kube, objects)
    # Consumers in one namespace: nothing cluster-wide is granted.
    assert not find(objects, "ClusterRole")
    assert not find(objects, "ClusterRoleBinding")
    (role,) = [o for o in find(objects, "Role") if o["metadata"]["namespace"] == "consumers"]

    # A second upgrade with the same values is accepted and changes no object.
    before = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    chart_releases.install(values(**BASE))
    after = {(o["kind"], o["metadata"]["name"]): o for o in chart_releases.manifest()}
    assert after == before

    chart_releases.uninstall()
    rbac = client.RbacAuthorizationV1Api(kube)
    with pytest.raises(ApiException) as gone:
        rbac.read_namespaced_role(role["metadata"]["name"], "consumers")
    assert gone.value.status == 404
    # keepOnUninstall=false: the LoadBalancer's namespace goes with the release.
    wait_until(
        f"namespace {lb_ns} deleted",
        lambda: lb_ns not in {n.metadata.name for n in core.list_namespace().items},
        timeout=60,
        not_yet=any_error,
    )


@pytest.mark.parametrize("example", sorted(EXAMPLE_VALUES))
def test_example_values_install(
    example: str, chart_releases: ChartReleases, kube: client.ApiClient, namespace: str
) -> None:
    label(kube, namespace, RESTRICTED)
    consumers = chart_releases.new_namespace("consumers")
    path: Path = EXAMPLE_VALUES[example]
    # Per-test consumer namespace (the examples name `consumers`), as kind-up would
    # also add the operator address and the pool address.
    override: dict[str, Any] = {**BASE, "loadBalancer.ip": "10.89.3.241"}
    if example == "bob":
        override["consumers.peersNamespaces"] = [consumers]
    else:
        override["consumers.namespace"] = consumers
    chart_releases.install(values(path, **override))
    objects = chart_releases.manifest()
    _assert_on_server(kube, objects)

    deploy = one(objects, "Deployment")
    replicas = deploy["spec"]["replicas"]
    _pods_created(kube, namespace, replicas)
    pdbs = find(objects, "PodDisruptionBudget")
    assert len(pdbs) == (1 if replicas > 1 else 0)

    lb_ns = chart_releases.lb_namespace()
    svc = client.CoreV1Api(kube).read_namespaced_service("p2p-loadbalancer", lb_ns)
    annotations = svc.metadata.annotations or {}
    if example == "charlie":
        assert svc.spec.load_balancer_ip == "10.89.3.241"
        assert "metallb.io/loadBalancerIPs" not in annotations
    else:
        assert annotations["metallb.universe.tf/loadBalancerIPs"] == "10.89.3.241"
        assert annotations["metallb.io/loadBalancerIPs"] == "10.89.3.241"
    assert svc.spec.external_traffic_policy == "Local"
    if example == "bob":
        assert one(objects, "NetworkPolicy")
        assert svc.spec.load_balancer_source_ranges == [
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
        ]
    roles = {r["metadata"]["namespace"] for r in find(objects, "Role")}
    assert roles == {namespace, lb_ns, consumers}


SERVICE_MONITOR_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "servicemonitors.monitoring.coreos.com"},
    "spec": {
        "group": "monitoring.coreos.com",
        "names": {
            "kind": "ServiceMonitor",
            "listKind": "ServiceMonitorList",
            "plural": "servicemonitors",
            "singular": "servicemonitor",
        },
        "scope": "Namespaced",
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": True,
                    }
                },
            }
        ],
    },
}


def test_service_monitor_follows_the_servers_api(
    chart_releases: ChartReleases, kube: client.ApiClient, namespace: str
) -> None:
    monitored = values(**_base(chart_releases), **{"metrics.serviceMonitor.enabled": True})
    with pytest.raises(HelmFailed) as refused:
        chart_releases.install(monitored)
    assert "monitoring.coreos.com/v1 ServiceMonitor API" in refused.value.stderr

    ext = client.ApiextensionsV1Api(kube)
    crds = dynamic.DynamicClient(kube).resources.get(  # type: ignore[no-untyped-call]
        api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition"
    )
    crds.create(body=SERVICE_MONITOR_CRD)
    try:

        def established() -> bool:
            crd = ext.read_custom_resource_definition("servicemonitors.monitoring.coreos.com")
            return any(
                c.type == "Established" and c.status == "True" for c in crd.status.conditions or []
            )

        wait_until("ServiceMonitor CRD established", established, timeout=30, not_yet=any_error)
        chart_releases.install(monitored)
        sm = client.CustomObjectsApi(kube).get_namespaced_custom_object(
            "monitoring.coreos.com", "v1", namespace, "servicemonitors", "ics-ics-validator"
        )
        assert sm["spec"]["endpoints"][0]["port"] == "metrics"
        assert sm["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "metrics"
        chart_releases.cleanup()
        chart_releases.releases.clear()
    finally:
        ext.delete_custom_resource_definition("servicemonitors.monitoring.coreos.com")


def _everything_visible(api: client.ApiClient, namespace: str, notes: str, manifest: str) -> str:
    """Text of every place a key must never appear: NOTES, ConfigMaps, pod specs, values."""
    core = client.CoreV1Api(api)
    parts = [notes, manifest]
    for cm in core.list_namespaced_config_map(namespace).items:
        parts.append(str(cm.data))
    for pod in core.list_namespaced_pod(namespace).items:
        parts.append(str(api.sanitize_for_serialization(pod.spec)))  # type: ignore[no-untyped-call]
    return "\n".join(parts)


def _manifest_without_secrets(chart_releases: ChartReleases) -> str:
    return "\n".join(str(o) for o in chart_releases.manifest() if o["kind"] != "Secret")


def test_generated_keys_stay_in_secrets_and_survive_upgrades_and_uninstall(
    chart_releases: ChartReleases, kube: client.ApiClient, namespace: str
) -> None:
    generate = values(
        **_base(chart_releases),
        **{
            "publishing.enabled": True,
            "provider.grpcUrls": ["provider:9090"],
            "publishing.key.generate": True,
            "publishing.authzGranter": "cosmos1qqqsyqcyq5rqwzqfpg9scrgwpugpzysnrk363e",
            "nodeKey.generate": True,
        },
    )
    notes = chart_releases.install(generate)
    core = client.CoreV1Api(kube)

    def secret(name: str, key: str) -> str:
        import base64

        data = core.read_namespaced_secret(name, namespace).data
        return base64.b64decode(data[key]).decode()

    signing = secret("ics-ics-validator-publish-key", "signing-key")
    derive = secret("ics-ics-validator-node-key-secret", "secret")
    assert len(signing) == 64
    assert int(signing, 16) > 0
    assert len(derive) == 64
    assert derive.isalnum()

    _pods_created(kube, namespace, 1)
    seen = _everything_visible(kube, namespace, notes, _manifest_without_secrets(chart_releases))
    assert signing not in seen
    assert derive not in seen
    env = one(chart_releases.manifest(), "Deployment")["spec"]["template"]["spec"]["containers"][0][
        "env"
    ]
    key_var = next(e for e in env if e["name"] == "ICS_PUBLISH_SIGNING_KEY")
    assert key_var["valueFrom"]["secretKeyRef"]["name"] == "ics-ics-validator-publish-key"

    chart_releases.install(generate)  # upgrade: the keys are read back, not replaced
    assert secret("ics-ics-validator-publish-key", "signing-key") == signing
    assert secret("ics-ics-validator-node-key-secret", "secret") == derive

    chart_releases.uninstall()
    # An authz grant and published node IDs refer to these keys: uninstall keeps them.
    assert secret("ics-ics-validator-publish-key", "signing-key") == signing
    assert secret("ics-ics-validator-node-key-secret", "secret") == derive
    chart_releases.install(generate)  # reinstall adopts and keeps them
    assert secret("ics-ics-validator-publish-key", "signing-key") == signing

    # A kept Secret that lost its key is not silently given a new one.
    core.patch_namespaced_secret(
        "ics-ics-validator-node-key-secret",
        namespace,
        [{"op": "remove", "path": "/data/secret"}],
    )
    with pytest.raises(HelmFailed) as refused:
        chart_releases.install(generate)
    assert "exists without the key secret" in refused.value.stderr


def test_existing_key_secret_is_referenced_never_copied(
    chart_releases: ChartReleases, kube: client.ApiClient, namespace: str
) -> None:
    mnemonic = " ".join(["abandon"] * 23 + ["art"])
    core = client.CoreV1Api(kube)
    core.create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="operator-key"), string_data={"mnemonic": mnemonic}
        ),
    )
    v: Values = values(
        **_base(chart_releases),
        **{
            "publishing.enabled": True,
            "provider.grpcUrls": ["provider:9090"],
            "publishing.key.existingSecret": "operator-key",
            "publishing.key.existingSecretKey": "mnemonic",
        },
    )
    notes = chart_releases.install(v)
    assert "operator-key" in notes
    _pods_created(kube, namespace, 1)
    manifest = "\n".join(str(o) for o in chart_releases.manifest())
    assert not find(chart_releases.manifest(), "Secret")
    assert mnemonic not in _everything_visible(kube, namespace, notes, manifest)
    values_out = run_helm(
        ["get", "values", "ics", "--all", "--namespace", namespace],
        kubeconfig=chart_releases.plane.kubeconfig,
    ).stdout
    assert "operator-key" in values_out
    assert mnemonic not in values_out


def test_restricted_pod_security_refuses_a_weakened_pod(
    chart_releases: ChartReleases, kube: client.ApiClient, namespace: str
) -> None:
    """The check above can fail: weaken the defaults and admission refuses the pod."""
    label(kube, namespace, RESTRICTED)
    chart_releases.install(
        values(
            **_base(chart_releases),
            **{
                # Helm merges maps: the other defaults stay, this one key is weakened.
                "securityContext.allowPrivilegeEscalation": True,
            },
        )
    )
    apps = client.AppsV1Api(kube)

    def refused() -> bool:
        return any(
            c.type == "ReplicaFailure" and "violates PodSecurity" in (c.message or "")
            for rs in apps.list_namespaced_replica_set(namespace).items
            for c in rs.status.conditions or []
        )

    wait_until(
        "the ReplicaSet to report the PodSecurity refusal", refused, timeout=45, not_yet=any_error
    )
    pods = client.CoreV1Api(kube).list_namespaced_pod(namespace, label_selector=SELECTOR)
    assert pods.items == []
