"""Runs last (file order): everything the SDK did stayed within the deployment's
permissions (deploy/nats/accounts.conf): nats-server logged no violation by a Python
connection (the SDK's workers and clients name themselves `weft-py-...`)."""


def test_no_permission_violations_by_the_sdk(cluster):
    ours = [line for line in cluster.permission_violations() if "python" in line or "weft-py" in line]
    assert ours == []
