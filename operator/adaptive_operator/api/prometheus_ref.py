"""`spec.prometheus`: which Prometheus a service's queries go to, and how to reach it.

Credentials are never written in the spec: they are keys of a Secret in the service's own
namespace (as KEDA's TriggerAuthentication does), read by the operator when it queries.
"""

from __future__ import annotations

import re
from typing import Annotated, cast

from pydantic import ConfigDict, Field, model_validator
from pydantic.config import JsonDict

from adaptive_operator.api.base import KubeModel

SECRET_KEY = r"^[-._a-zA-Z0-9]+$"
# Headers a tenant may not set: they would change where or how the request goes.
RESERVED_HEADERS = frozenset({"host", "content-length", "content-type", "transfer-encoding",
                              "connection", "authorization"})
BASIC_RULE = {"rule": "has(self.usernameKey) == has(self.passwordKey)",
              "message": "usernameKey and passwordKey go together"}
HEADER_NAME = r"^[A-Za-z0-9-]{1,64}$"
HEADER_RULE = {"rule": f"!has(self.headers) || self.headers.all(k, k.matches('{HEADER_NAME}'))",
               "message": "a header name is 1-64 letters, digits or dashes"}
ONE_AUTH_RULE = {"rule": "!(has(self.bearerTokenKey) && has(self.usernameKey))",
                 "message": "use bearerTokenKey or basic auth (usernameKey/passwordKey), not both"}


class SecretRef(KubeModel):
    """A Secret in the service's namespace."""

    name: str = Field(min_length=1, max_length=253,
                      pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
                      description="Name of the Secret.")


def _key(what: str) -> str | None:
    return Field(default=None, min_length=1, max_length=253, pattern=SECRET_KEY,
                 description=f"Key of the Secret holding {what}.")


class PrometheusAuth(KubeModel):
    """Credentials for the service's Prometheus, from a Secret in the service's namespace."""

    model_config = KubeModel.model_config | ConfigDict(json_schema_extra=cast(
        JsonDict, {"x-kubernetes-validations": [BASIC_RULE, ONE_AUTH_RULE, HEADER_RULE]}))

    secret_ref: SecretRef = Field(description="The Secret the keys below are read from.")
    bearer_token_key: str | None = _key("a bearer token (sent as Authorization: Bearer)")
    username_key: str | None = _key("the basic-auth user name")
    password_key: str | None = _key("the basic-auth password")
    ca_key: str | None = _key("a PEM CA bundle that the server's certificate is verified "
                              "against (instead of the system's CAs)")
    headers: dict[str, Annotated[str, Field(max_length=253, pattern=SECRET_KEY)]] = Field(
        default_factory=dict, max_length=16,
        description="Extra headers: header name -> key of the Secret holding its value, e.g. "
                    "X-Scope-OrgID for Thanos, Cortex or Mimir tenancy.")

    @model_validator(mode="after")
    def _consistent(self) -> PrometheusAuth:
        if (self.username_key is None) != (self.password_key is None):
            raise ValueError(BASIC_RULE["message"])
        if self.bearer_token_key is not None and self.username_key is not None:
            raise ValueError(ONE_AUTH_RULE["message"])
        for header in self.headers:
            if not re.fullmatch(HEADER_NAME, header):
                raise ValueError(f"{HEADER_RULE['message']} ({header[:64]!r} is not)")
            if header.lower() in RESERVED_HEADERS:
                raise ValueError(f"the header {header} cannot be set here")
        return self


class PrometheusRef(KubeModel):
    """The Prometheus this service's queries go to (it must be on the operator's allowlist)."""

    url: str = Field(min_length=1, max_length=2048, pattern=r"^https?://[^/@?#\s]+(/[^?#\s]*)?$",
                     description="Prometheus base URL; overrides the operator's "
                                 "--prometheus-url. Refused unless the operator's "
                                 "--prometheus-allowed-url lists it. No user:password@: "
                                 "credentials go in `auth`.")
    insecure_skip_verify: bool = Field(
        default=False, description="Do not verify the server's TLS certificate (an explicit "
                                   "opt-out; the default verifies it).")
    auth: PrometheusAuth | None = Field(
        default=None, description="Credentials from a Secret in this namespace (none when "
                                  "absent).")
