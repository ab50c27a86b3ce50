"""In a Pod the operator finds the API server as client-go does: from the `kubernetes` Service
variables the kubelet sets, not through cluster DNS (tests/pods runs it so, on a node without
DNS)."""

import pytest
from certoperator.kube import in_cluster_server


@pytest.mark.parametrize(
    ("environ", "server"),
    [
        ({"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"},
         "https://10.0.0.1:443"),
        ({"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "6443"},
         "https://[fd00::1]:6443"),
        ({"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, None),
        ({}, None),
    ],
)  # fmt: skip
def test_the_api_server_address_comes_from_the_service_variables(environ, server):
    assert in_cluster_server(environ) == server
