"""Local Kubernetes for the tests and benchmarks: a control plane and a node, built from source.

- ``binaries``: the pinned versions and the cached binaries (``scripts/kube/build.sh``,
  ``scripts/kube/tools.sh`` build or fetch them).
- ``procs``: starting, watching and stopping the processes; polling helpers.
- ``pki``: the throwaway CA, certificates and kubeconfigs of one cluster.
- ``controlplane``: etcd, kube-apiserver, kube-controller-manager (and kube-scheduler for a
  node) on free ports.
- ``node``: a kubelet node (containerd, CNI bridge, kube-proxy) joined to a control plane.
- ``handle``: ``Kube``, kubectl and helm bound to one cluster, ours or an existing one.

The shell entry points stay in ``scripts/kube/`` (``build.sh``, ``tools.sh``, ``up.py``); this
package finds them there, so it is meant to run from a checkout (``pip install -e .``).
"""
