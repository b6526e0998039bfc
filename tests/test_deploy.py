"""deploy/: the manifests and configs hang together, so they cannot rot unnoticed.

No cluster here: the Kubernetes manifests are parsed and cross-checked (selectors, ports, the
Secret keys they read, cookie affinity and timeouts on the Ingress, the settings the app reads).
HAProxy's config is checked by haproxy itself (and driven live by tests/test_balancer.py).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from harness.processes import find_binary
from knn.core.project import MAX_PROJECT_BYTES
from knn.serving.settings import VARIABLES, Settings

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
K8S = DEPLOY / "k8s"


def documents() -> list[dict]:
    return [d for path in sorted(K8S.glob("*.yaml")) for d in yaml.safe_load_all(path.read_text()) if d]


def one(kind: str, name: str) -> dict:
    (found,) = [d for d in documents() if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def container(deployment: dict) -> dict:
    (c,) = deployment["spec"]["template"]["spec"]["containers"]
    return c


def test_kustomization_applies_every_manifest():
    listed = yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def test_the_service_reaches_the_app_deployments_port():
    app, service = one("Deployment", "knn-app"), one("Service", "knn-app")
    labels = app["spec"]["template"]["metadata"]["labels"]
    assert app["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
    ports = {p["name"]: p["containerPort"] for p in container(app)["ports"]}
    (service_port,) = service["spec"]["ports"]
    assert service_port["targetPort"] in ports or service_port["targetPort"] in ports.values()
    for probe in ("readinessProbe", "livenessProbe"):
        get = container(app)[probe]["httpGet"]
        assert get["path"] == "/_stcore/health" and get["port"] in ports


def test_the_ingress_keeps_each_browser_on_one_pod():
    ingress, service = one("Ingress", "knn-app"), one("Service", "knn-app")
    notes = ingress["metadata"]["annotations"]
    assert notes["nginx.ingress.kubernetes.io/affinity"] == "cookie"
    assert notes["nginx.ingress.kubernetes.io/affinity-mode"] == "persistent"
    assert notes["nginx.ingress.kubernetes.io/session-cookie-name"]
    # A WebSocket lives as long as its tab; a project upload can be MAX_PROJECT_BYTES.
    for timeout in ("proxy-read-timeout", "proxy-send-timeout"):
        assert int(notes[f"nginx.ingress.kubernetes.io/{timeout}"]) >= 3600
    size = re.fullmatch(r"(\d+)m", notes["nginx.ingress.kubernetes.io/proxy-body-size"])
    assert size and int(size[1]) * 2**20 >= MAX_PROJECT_BYTES
    backends = [p["backend"]["service"] for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]]
    names = {p["name"] for p in service["spec"]["ports"]}
    assert backends and all(b["name"] == "knn-app" and b["port"]["name"] in names for b in backends)
    assert ingress["spec"]["tls"]  # no camera without https


def test_the_app_and_the_relay_read_one_secret():
    secret = one("Secret", "knn-turn")["stringData"]
    app, coturn = one("Deployment", "knn-app"), one("Deployment", "coturn")
    for deployment in (app, coturn):
        for env in container(deployment)["env"]:
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref and env["name"] != "KNN_DATABASE_URL":
                assert ref["name"] == "knn-turn" and ref["key"] in secret, env
    names = {e["name"] for e in container(app)["env"]}
    assert {n for n in names if n.startswith("KNN_")} <= {name for name, _, _ in VARIABLES}
    servers = json.loads(secret["ice-servers"])
    urls = [u for s in servers for u in s["urls"]]
    assert urls[0].startswith("turn:") and urls[0].endswith("transport=udp")  # aiortc takes the first
    assert all(s["username"] == secret["username"] and s["credential"] == secret["password"] for s in servers)
    args = container(coturn)["args"]
    assert "--lt-cred-mech" in args and "--allow-loopback-peers" not in args
    assert any(a.startswith("--denied-peer-ip=169.254.") for a in args)
    assert coturn["spec"]["template"]["spec"]["hostNetwork"] is True


def test_every_replica_keeps_projects_in_one_postgresql():
    (database,) = [e for e in container(one("Deployment", "knn-app"))["env"] if e["name"] == "KNN_DATABASE_URL"]
    ref = database["valueFrom"]["secretKeyRef"]
    url = one("Secret", ref["name"])["stringData"][ref["key"]]
    assert not Settings.from_env({"KNN_DATABASE_URL": url}).problems  # a URL the app accepts
    assert url.startswith("postgresql://")


def test_the_ingress_logs_no_link_and_sends_no_referrer():
    notes = one("Ingress", "knn-app")["metadata"]["annotations"]
    assert notes["nginx.ingress.kubernetes.io/enable-access-log"] == "false"
    headers = one("ConfigMap", notes["nginx.ingress.kubernetes.io/custom-headers"])["data"]
    assert headers == {"Referrer-Policy": "no-referrer"}


def test_the_image_serves_on_the_deployments_port():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    app = one("Deployment", "knn-app")
    (port,) = [p["containerPort"] for p in container(app)["ports"]]
    assert f"EXPOSE {port}" in dockerfile and f"--server.port={port}" in dockerfile
    assert "app.py" in dockerfile


def test_haproxy_accepts_the_shipped_config():
    haproxy = find_binary("haproxy")
    if haproxy is None:
        pytest.skip("haproxy is absent (apt-get install haproxy; .ci/run does)")
    env = {**os.environ, "KNN_LB_BIND": "127.0.0.1:8080", "KNN_APP1": "127.0.0.1:8501", "KNN_APP2": "127.0.0.1:8502"}
    check = subprocess.run(
        [haproxy, "-c", "-f", str(DEPLOY / "haproxy" / "haproxy.cfg")], env=env, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    config = (DEPLOY / "haproxy" / "haproxy.cfg").read_text()
    assert re.search(r"^\s*cookie KNN_SERVER insert indirect nocache", config, re.M)
    assert re.search(r"^\s*timeout tunnel", config, re.M)
    # A project's link is in the query: logged by path only (tests/test_failover.py reads the log),
    # and no Referer carries it.
    (log_format,) = re.findall(r"^\s*log-format (.*)$", config, re.M)
    assert "%HPO" in log_format and not re.search(r"%(\{[^}]*\})?(r|HU|HQ)\b", log_format), log_format
    assert not re.search(r"^\s*option httplog", config, re.M)  # it would bring back the whole request line
    assert re.search(r"^\s*http-response set-header Referrer-Policy no-referrer", config, re.M)


def test_serve_script_parses():
    check = subprocess.run(["bash", "-n", str(DEPLOY / "serve.sh")], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
