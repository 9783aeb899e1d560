"""RBAC is really enforced, so chart permission tests mean something."""

from __future__ import annotations

import json

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.support.kube import ControlPlane
from tests.support.polling import any_error, wait_until

pytestmark = pytest.mark.kube


def test_serviceaccount_is_denied_until_a_role_allows_it(
    control_plane: ControlPlane, kube: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(kube)
    rbac = client.RbacAuthorizationV1Api(kube)
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="reader"))
    )
    as_sa = client.CoreV1Api(control_plane.service_account_client(namespace, "reader"))
    with pytest.raises(ApiException) as err:
        as_sa.list_namespaced_config_map(namespace)
    assert err.value.status == 403
    assert f"system:serviceaccount:{namespace}:reader" in err.value.body

    rbac.create_namespaced_role(
        namespace,
        client.V1Role(
            metadata=client.V1ObjectMeta(name="cm-reader"),
            rules=[client.V1PolicyRule(api_groups=[""], resources=["configmaps"], verbs=["list"])],
        ),
    )
    rbac.create_namespaced_role_binding(
        namespace,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name="cm-reader"),
            role_ref=client.V1RoleRef(
                api_group="rbac.authorization.k8s.io", kind="Role", name="cm-reader"
            ),
            subjects=[
                client.RbacV1Subject(kind="ServiceAccount", name="reader", namespace=namespace)
            ],
        ),
    )
    # The authorizer sees new bindings through an informer, and the controller
    # manager publishes kube-root-ca.crt into new namespaces: both a moment later.
    wait_until(
        "the new RoleBinding to allow listing ConfigMaps",
        lambda: any(
            cm.metadata.name == "kube-root-ca.crt"
            for cm in as_sa.list_namespaced_config_map(namespace).items
        ),
        timeout=30,
        not_yet=any_error,
    )
    # Only what was granted: reading Secrets stays forbidden.
    with pytest.raises(ApiException) as err2:
        as_sa.list_namespaced_secret(namespace)
    assert err2.value.status == 403


def test_impersonated_user_without_bindings_is_denied(control_plane: ControlPlane) -> None:
    core = client.CoreV1Api(control_plane.impersonating_client("mallory"))
    with pytest.raises(ApiException) as err:
        core.list_namespace()
    assert err.value.status == 403
    assert (
        'User "mallory" cannot list resource "namespaces"'
        in json.loads(str(err.value.body))["message"]
    )
