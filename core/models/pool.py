"""``BuildKitPool`` as the kernel sees it: a validated, immutable view of the CR's ``spec``.

Every field the seed README omits is optional with a default, so the README's example parses
unchanged. Names mirror the CRD (camelCase on the wire, snake_case in Python).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from cronsim import CronSim, CronSimError
from pydantic import Field, GetJsonSchemaHandler, StringConstraints, field_validator, model_validator
from pydantic.json_schema import JsonSchemaValue

from buildkit_controller.core.models._base import Duration, Quantity, _Model

__all__ = [
    "AuthMethod",
    "AuthSpec",
    "CacheBackend",
    "CacheGC",
    "CacheSpec",
    "GatewaySpec",
    "NetworkingSpec",
    "Pool",
    "PoolSpec",
    "RBACRule",
    "RBACSpec",
    "ResourceRequirements",
    "ResourcesSpec",
    "ScalingSpec",
    "TLSAuto",
    "TLSSpec",
    "WorkerSchedulingSpec",
]

DEFAULT_GATEWAY_PORT = 1235


def _split_options(data: Any) -> Any:
    """``{type: s3, s3: {...}}`` (the CRD form) → ``{type: s3, options: {...}}``."""
    if isinstance(data, Mapping) and "type" in data and "options" not in data:
        return {"type": data["type"], "options": data.get(str(data["type"])) or {}}
    return data


class ScalingSpec(_Model):
    """How many workers the pool keeps and when it lets them go."""

    mode: Literal["auto", "manual", "dynamic"] = "auto"
    min: int = Field(default=0, ge=0)
    max: int = Field(default=10, ge=1)
    scale_down_delay: Duration = timedelta(minutes=15)
    #: 5-field cron; while a fire time lies within ``scaleDownDuration`` before now, min idle is 0.
    scale_down_schedule: str | None = None
    #: Length of each off-hours window opened by ``scaleDownSchedule`` (one cron minute if unset,
    #: so ``* 0-6 * * *`` covers 00:00-06:59).
    scale_down_duration: Duration | None = None
    #: An allocated worker with no connection for this long is released.
    idle_timeout: Duration | None = None
    #: Name of the scaling plugin; defaults to ``schedule`` with a schedule, else ``minidle``.
    policy: str | None = None

    @field_validator("scale_down_schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                CronSim(value, datetime(2000, 1, 1))
            except CronSimError as exc:
                raise ValueError(f"invalid cron expression {value!r}: {exc}") from None
        return value

    @model_validator(mode="after")
    def _bounds(self) -> ScalingSpec:
        if self.max < self.min:
            raise ValueError(f"max ({self.max}) must be at least min ({self.min})")
        return self

    @property
    def policy_name(self) -> str:
        """The scaling plugin this pool uses."""
        if self.policy:
            return self.policy
        return "schedule" if self.scale_down_schedule else "minidle"


class ResourceRequirements(_Model):
    """Container requests and limits; values are Kubernetes quantities."""

    requests: Mapping[str, Quantity] = Field(default_factory=dict)
    limits: Mapping[str, Quantity] = Field(default_factory=dict)

    @property
    def is_empty(self) -> bool:
        return not self.requests and not self.limits


class ResourcesSpec(_Model):
    buildkit: ResourceRequirements = Field(default_factory=ResourceRequirements)


class TLSAuto(_Model):
    server_cert_duration: Duration = timedelta(hours=8760)
    rotate_before_expiry: Duration = timedelta(hours=720)


class TLSSpec(_Model):
    #: TLS cannot be turned off: the gateway and workers only speak mTLS. Kept for compatibility.
    enabled: bool = True
    auto: TLSAuto = Field(default_factory=TLSAuto)


class AuthMethod(_Model):
    """One enabled auth method; ``options`` is the object under the method's own key."""

    type: str
    options: Mapping[str, Any] = Field(default_factory=dict)

    @classmethod
    def __get_pydantic_json_schema__(cls, core: Any, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        # In a CR it is either a bare name or {type: ..., <type>: {...}}: only the kernel can check it.
        return {"x-kubernetes-preserve-unknown-fields": True,
                "description": "An auth method: a name (mtls) or {type: oidc, oidc: {...}}."}

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        # The seed README writes ``methods: [mtls]``; the seed CRD writes ``[{type: mtls, mtls: {...}}]``.
        if isinstance(data, str):
            return {"type": data}
        return _split_options(data)


class RBACRule(_Model):
    users: tuple[str, ...]
    pools: tuple[str, ...]
    #: ``allow`` (default) or ``deny``; a matching deny always wins.
    effect: Literal["allow", "deny"] = "allow"


class RBACSpec(_Model):
    enabled: bool = True
    rules: tuple[RBACRule, ...] = ()


class AuthSpec(_Model):
    methods: tuple[AuthMethod, ...] = ()
    rbac: RBACSpec = Field(default_factory=RBACSpec)
    #: With no RBAC rule: ``allow-authenticated`` admits any identity of an enabled method.
    policy: Literal["allow-authenticated", "deny"] = "allow-authenticated"


class CacheBackend(_Model):
    """A cache backend: ``type`` names the cache plugin; ``options`` is the object under that key."""

    type: str
    options: Mapping[str, Any] = Field(default_factory=dict)

    @classmethod
    def __get_pydantic_json_schema__(cls, core: Any, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        # The CR form: {type: s3, s3: {...}}; the plugin named by `type` validates its own options.
        return {"type": "object", "required": ["type"], "properties": {"type": {"type": "string"}},
                "x-kubernetes-preserve-unknown-fields": True,
                "description": "A cache backend: {type: <plugin>, <plugin>: {...options}}."}

    @model_validator(mode="before")
    @classmethod
    def _split(cls, data: Any) -> Any:
        return _split_options(data)


class CacheGC(_Model):
    enabled: bool = True
    keep_storage: Quantity | None = None
    keep_duration: Duration | None = None


class CacheSpec(_Model):
    backends: tuple[CacheBackend, ...] = ()
    gc: CacheGC = Field(default_factory=CacheGC)


class GatewaySpec(_Model):
    enabled: bool = True
    replicas: int = Field(default=1, ge=1)
    resources: ResourceRequirements = Field(default_factory=ResourceRequirements)
    token_ttl: Duration = Field(default=timedelta(hours=1), alias="tokenTTL")
    max_token_ttl: Duration = Field(default=timedelta(hours=24), alias="maxTokenTTL")
    service_type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = "ClusterIP"
    port: int = Field(default=DEFAULT_GATEWAY_PORT, ge=1, le=65535)
    node_port: int | None = Field(default=None, ge=30000, le=32767)
    load_balancer_class: str | None = None

    @model_validator(mode="after")
    def _ttls(self) -> GatewaySpec:
        if self.token_ttl > self.max_token_ttl:
            raise ValueError("tokenTTL must not exceed maxTokenTTL")
        return self


class ExternalSpec(_Model):
    hostname: str | None = None
    annotations: Mapping[str, str] = Field(default_factory=dict)


class NetworkingSpec(_Model):
    external: ExternalSpec = Field(default_factory=ExternalSpec)
    annotations: Mapping[str, str] = Field(default_factory=dict)


class WorkerSchedulingSpec(_Model):
    """Where and how worker pods run; passed through to the pod spec."""

    node_selector: Mapping[str, str] = Field(default_factory=dict)
    tolerations: tuple[Mapping[str, Any], ...] = ()
    affinity: Mapping[str, Any] | None = None
    topology_spread_constraints: tuple[Mapping[str, Any], ...] = ()
    priority_class_name: str | None = None
    runtime_class_name: str | None = None
    security_profile: Literal["rootless", "userns", "privileged"] = "rootless"
    image_pull_secrets: tuple[str, ...] = ()
    service_account_name: str | None = None
    #: How long a pod may stay unschedulable before the worker is marked Failed.
    unschedulable_timeout: Duration = timedelta(minutes=10)

    @field_validator("image_pull_secrets", mode="before")
    @classmethod
    def _secret_names(cls, value: Any) -> Any:
        # Accept both ``[name]`` and the pod-spec form ``[{name: name}]``.
        if isinstance(value, list | tuple):
            return tuple(v["name"] if isinstance(v, Mapping) else v for v in value)
        return value


class PoolSpec(_Model):
    scaling: ScalingSpec = Field(default_factory=ScalingSpec)
    #: Named sizing profile (``sm``/``md``/``lg``/``xl`` or a plugin's); explicit resources win.
    size: str | None = None
    #: Largest size an allocation request may ask for; defaults to ``size``.
    max_size: str | None = None
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    tls: TLSSpec = Field(default_factory=TLSSpec)
    auth: AuthSpec = Field(default_factory=AuthSpec)
    cache: CacheSpec = Field(default_factory=CacheSpec)
    gateway: GatewaySpec = Field(default_factory=GatewaySpec)
    networking: NetworkingSpec = Field(default_factory=NetworkingSpec)
    worker: WorkerSchedulingSpec = Field(default_factory=WorkerSchedulingSpec)
    buildkit_image: str | None = None
    gateway_image: str | None = None
    #: A complete ``buildkitd.toml`` used verbatim instead of the generated one.
    buildkit_config: Annotated[str, StringConstraints(strip_whitespace=False)] | None = None


class Pool(_Model):
    """A pool's identity and spec, as hooks receive it."""

    name: str
    namespace: str
    spec: PoolSpec = Field(default_factory=PoolSpec)
    uid: str | None = None
    generation: int | None = None

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Pool:
        """Build from a whole CR body; spec errors name ``spec.<field>``."""
        meta = body.get("metadata") or {}
        spec = PoolSpec.parse(body.get("spec"), path="spec")
        return cls(name=meta.get("name", ""), namespace=meta.get("namespace", "default"), spec=spec,
                   uid=meta.get("uid"), generation=meta.get("generation"))

    @property
    def endpoint(self) -> str:
        """``tcp://<pool>.<ns>.svc:<port>``, or the external hostname when one is set."""
        host = self.spec.networking.external.hostname or f"{self.name}.{self.namespace}.svc"
        return f"tcp://{host}:{self.spec.gateway.port}"
