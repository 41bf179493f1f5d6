#!/usr/bin/env python3
"""Pods of the real node as Prometheus scrape targets, found through the API server.

Debian's Prometheus is built without Kubernetes service discovery, so `e2e/cluster` runs this
beside it: every 2 s it lists the pods that ask to be scraped the usual way (annotations
`prometheus.io/scrape: "true"` and `prometheus.io/port`), keeps those Running on the real node
(KWOK's fake pod addresses are not on this machine), and writes them as a file-discovery JSON
with the labels Kubernetes discovery would give: `namespace`, `pod` and the pod's labels.

    pod_discovery.py KUBECTL KUBECONFIG TARGETS_FILE NODE

Standard library only.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

PERIOD = 2.0


def targets(pods: list[dict[str, Any]], node: str) -> list[dict[str, Any]]:
    found = []
    for pod in pods:
        meta, spec, status = pod["metadata"], pod.get("spec", {}), pod.get("status", {})
        notes = meta.get("annotations") or {}
        port = notes.get("prometheus.io/port", "")
        if (notes.get("prometheus.io/scrape") != "true" or not port.isdigit()
                or spec.get("nodeName") != node or status.get("phase") != "Running"
                or not status.get("podIP")):
            continue
        labels = {re.sub(r"[^a-zA-Z0-9_]", "_", key): value
                  for key, value in (meta.get("labels") or {}).items()}
        labels.update(namespace=meta["namespace"], pod=meta["name"])
        found.append({"targets": [f"{status['podIP']}:{port}"], "labels": labels})
    return found


def write(path: Path, found: list[dict[str, Any]]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(found, indent=1, sort_keys=True))
    tmp.replace(path)  # Prometheus never reads half a file


def main(argv: list[str]) -> int:
    kubectl, kubeconfig, out, node = argv
    path = Path(out)
    while True:
        listed = subprocess.run([kubectl, "--kubeconfig", kubeconfig, "get", "pods", "-A",
                                 "--field-selector", f"spec.nodeName={node}", "-o", "json"],
                                capture_output=True, text=True, timeout=30)
        if listed.returncode == 0:  # else keep the last good list until the API answers
            write(path, targets(json.loads(listed.stdout)["items"], node))
        time.sleep(PERIOD)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
