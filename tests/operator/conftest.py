"""What every operator test module on the control plane starts from."""

import pytest
from support.operator_process import apply, install_crds, lambdaca_manifest


@pytest.fixture(scope="module")
def cluster(kube, local_ca):
    """The CRDs installed and a LambdaCA named ``local`` pointing at the suite's local CA."""
    install_crds(kube)
    apply(kube, lambdaca_manifest("local", local_ca))
    return kube
