"""The e2e suite's switches between what the local cluster can fake cheaply and what every other
cluster (kind in users' CI) runs for real. Off the local cluster only the real choice exists;
on it, an environment variable asks for the real one, which shows the suite passing as on kind."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Mode:
    variable: str
    fake: str  # the local cluster's default
    real: str  # what runs off the local cluster, and locally when asked

    def asked(self) -> str:
        """The value set in the environment (the fake one if unset); anything else is refused,
        so that a typo does not quietly run the other mode."""
        wanted = os.environ.get(self.variable, self.fake)
        if wanted not in (self.fake, self.real):
            raise ValueError(f"{self.variable} is {self.fake} or {self.real}, not {wanted!r}")
        return wanted

    def is_real(self, local_cluster: bool) -> bool:
        return not local_cluster or self.asked() == self.real


# Pods that only have to exist: KWOK's fake pods, or idle containers (Cluster.stand_in).
STAND_INS = Mode("ADAPTIVE_E2E_STAND_INS", fake="fake", real="real")
# Where the tests' exporters run: a process on the host, or a pod (metrics_source.py).
EXPORTERS = Mode("ADAPTIVE_E2E_EXPORTER", fake="host", real="pod")
