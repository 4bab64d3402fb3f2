"""UIS — the Universal Ingestion Spec: a pipeline declared in YAML, validated, turned into a Pipeline.

::

    name: caiso-rt-lmp
    source: {type: caiso, dataset: rt_lmp, params: {nodes: [TH_NP15_GEN-APND]}}
    schedule: "*/5 * * * *"
    sla: 10m
    window: 1h
    sinks: [iceberg, clickhouse]
    checks: {lmp: {min: -500, max: 3000}}

A bad spec raises :class:`~hmco.errors.SpecError` whose message names every bad field and its problem.
Hostile values are refused the same way: a ``..`` segment, a NUL or a line break in any
``source.params`` string (those become URL paths, keys and file names), a ``base_url`` that is not
http(s), a pipeline ``name`` with ``..``, or a transform that is not ``package.module:function``.
"""

from __future__ import annotations

import importlib
import inspect
import re
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from hmco.errors import ConfigError, SpecError
from hmco.names import find_traversal
from hmco.redaction import redact_text
from hmco.windows import parse_duration

if TYPE_CHECKING:
    from hmco.compose.pipeline import Pipeline
    from hmco.config import Settings
    from hmco.cron import Cron
    from hmco.lake import Lake
    from hmco.sources.base import Source

__all__ = ["PipelineSpec", "SourceSpec", "build_pipeline", "build_source", "load_spec"]


def _positive_duration(value: Any) -> timedelta:
    td = parse_duration(value)
    if td <= timedelta(0):
        raise ValueError("must be a positive duration")
    return td


def _duration(value: Any) -> timedelta:
    td = parse_duration(value)
    if td < timedelta(0):
        raise ValueError("must not be negative")
    return td


Duration = Annotated[timedelta, BeforeValidator(_positive_duration)]
NonNegativeDuration = Annotated[timedelta, BeforeValidator(_duration)]


class SourceSpec(BaseModel):
    """Which source client to run and with what parameters."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(description="registry name of the source (eia, fred, noaa, census, caiso, miso, spp …)")
    dataset: str | None = Field(None, description="canonical dataset; default = the source's first dataset")
    base_url: str | None = Field(None, description="override the API root (mirror, proxy, test server)")
    params: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of the source client")

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str | None) -> str | None:
        if value is not None:
            from urllib.parse import urlsplit

            try:
                parts = urlsplit(value)
            except ValueError:
                parts = None
            if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"must be an http(s) URL with a host, not {_shown(value)}")
            if find_traversal(parts.path.lstrip("/")) or any(c in value for c in "\x00\r\n"):
                raise ValueError(f"must not contain '..' segments or control characters, not {_shown(value)}")
        return value

    @field_validator("params")
    @classmethod
    def _check_params(cls, value: dict[str, Any]) -> dict[str, Any]:
        problems = [f"params.{where} {why}: {_shown(v)}" for where, v, why in _traversals(value)]
        if problems:
            raise ValueError(
                "; ".join(problems) + " (spec values must not escape the path or key they become part of)"
            )
        return value

    @model_validator(mode="after")
    def _check_source(self) -> SourceSpec:
        from hmco.sources.base import get_source_class

        try:
            cls = get_source_class(self.type)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        if self.dataset is not None and self.dataset not in cls.datasets:
            raise ValueError(
                f"source {self.type!r} cannot produce dataset {self.dataset!r}; it produces {list(cls.datasets)}"
            )
        accepted = inspect.signature(cls.__init__).parameters
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
        reserved = {"self", "dataset", "settings"}
        if not takes_any:
            unknown = sorted(set(self.params) - set(accepted) - reserved)
            if unknown:
                known = sorted(set(accepted) - reserved - {"base_url"})
                raise ValueError(f"source {self.type!r} has no parameter(s) {unknown}; it accepts {known}")
            if self.base_url is not None and "base_url" not in accepted:
                raise ValueError(f"source {self.type!r} does not take a base_url")
        if "http" in self.params and "http" in accepted:
            from hmco.sources.http import HttpOptions

            try:
                HttpOptions.coerce(self.params["http"])
            except ConfigError as exc:
                raise ValueError(f"params.http: {exc}") from None
        return self


class PipelineSpec(BaseModel):
    """A whole pipeline: source, schedule, service level, layout, sinks and quality checks."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$", description="unique pipeline name (lower case)")
    description: str = ""
    source: SourceSpec
    schedule: str | None = Field(None, description="cron expression (5 fields) for the scheduler")
    timezone: str = Field("UTC", description="IANA time zone the schedule is read in")
    sla: Duration | None = Field(None, description="freshness SLA; default = the dataset's")
    lag: NonNegativeDuration = Field(
        timedelta(0), description="the source's publication delay, added to the SLA by freshness checks"
    )
    retries: int = Field(2, ge=0, le=10, description="scheduler retries of a failed run")
    retry_delay: Duration = Field(timedelta(minutes=2), description="wait between retries")
    timeout: Duration | None = Field(None, description="kill a run after this long; default = the cadence")
    window: Duration | None = Field(None, description="backfill chunk; default = the source's window_step")
    start: date | datetime | None = Field(None, description="first day of history to backfill")
    publish_tier: Literal["curated", "ml"] = "curated"
    stage: bool = Field(
        True, description="write–audit–publish: write the batch once to an audit branch while the gate runs"
    )
    sinks: list[str] = Field(
        default_factory=lambda: ["iceberg"], description="registered sink names (hmco.sinks.SINKS)"
    )
    checks: dict[str, Any] | None = Field(None, description="quality overrides (see hmco.quality)")
    transforms: list[str] = Field(
        default_factory=list, description="'module:function' transforms after parsing"
    )

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if ".." in value:  # the name becomes part of keys, paths and metric labels
            raise ValueError(f"must not contain '..' (it names paths and keys), not {value!r}")
        return value

    @field_validator("schedule")
    @classmethod
    def _check_cron(cls, value: str | None) -> str | None:
        if value is not None:
            from hmco.cron import Cron

            Cron(value)  # croniter validates; the ValueError names the problem
        return value

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        from hmco.cron import Cron

        Cron("* * * * *", value)
        return value

    @property
    def cron(self) -> Cron | None:
        """The schedule as a :class:`~hmco.cron.Cron` (None when the spec has none)."""
        from hmco.cron import Cron

        return Cron(self.schedule, self.timezone) if self.schedule is not None else None

    @property
    def freshness_sla(self) -> timedelta:
        """The SLA freshness checks hold this pipeline's dataset to: the spec's, else the dataset's."""
        from hmco.schemas import get_dataset

        return self.sla if self.sla is not None else get_dataset(self.dataset_name).sla

    @field_validator("transforms")
    @classmethod
    def _check_transforms(cls, value: list[str]) -> list[str]:
        for ref in value:
            _resolve(ref)
        return value

    @field_validator("sinks")
    @classmethod
    def _check_sinks(cls, value: list[str]) -> list[str]:
        from hmco.sinks import SINKS

        unknown = [v for v in value if v not in SINKS]
        if unknown:
            raise ValueError(f"unknown sink(s) {unknown}; registered sinks are {sorted(SINKS)}")
        if "iceberg" not in value:
            raise ValueError("sinks must include 'iceberg' (the lake is the system of record)")
        if len(set(value)) != len(value):
            raise ValueError("sinks are listed more than once")
        return value

    @field_validator("checks")
    @classmethod
    def _check_checks(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return value
        try:
            quality_spec = importlib.import_module("hmco.quality.spec")
        except ImportError:
            return value
        model = getattr(quality_spec, "QualitySpec", None)
        if model is not None:
            try:
                model.model_validate(value)
            except ValidationError as exc:
                raise ValueError("; ".join(_format_errors(exc))) from None
        return value

    @property
    def dataset_name(self) -> str:
        from hmco.sources.base import get_source_class

        return self.source.dataset or get_source_class(self.source.type).datasets[0]


_TRANSFORM = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*")


def _shown(value: object) -> str:
    """A spec value as an error quotes it: repr'd, secrets redacted, at most 80 characters."""
    text = redact_text(repr(value))
    return text if len(text) <= 80 else text[:77] + "..."


def _traversals(value: Any, where: str = "") -> list[tuple[str, Any, str]]:
    """(location, value, why) of every string in ``value`` (keys too) that would escape a path or key.

    A ``..`` segment, a NUL or a line break is refused; an absolute path is not (operators point
    ``http.verify`` at a CA bundle and custom sources at their directories).
    """
    found: list[tuple[str, Any, str]] = []
    if isinstance(value, str):
        why = find_traversal(value)
        if why and why != "is an absolute path":
            found.append((where or "value", value, why))
    elif isinstance(value, dict):
        for key, item in value.items():
            name = f"{where}.{key}" if where else str(key)
            found += _traversals(str(key), f"{name} (key)") if find_traversal(str(key)) else []
            found += _traversals(item, name)
    elif isinstance(value, (list, tuple, set)):
        for i, item in enumerate(value):
            found += _traversals(item, f"{where}[{i}]")
    return found


def _resolve(ref: str) -> Any:
    if not isinstance(ref, str) or _TRANSFORM.fullmatch(ref) is None:
        raise ValueError(f"transform {_shown(ref)} must look like 'package.module:function'")
    module, _, attr = ref.partition(":")
    try:
        fn = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"transform {ref!r} cannot be imported: {exc}") from None
    if not callable(fn):
        raise ValueError(f"transform {ref!r} is not callable")
    return fn


def _format_errors(exc: ValidationError) -> list[str]:
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "spec"
        msg = err["msg"].removeprefix("Value error, ")
        out.append(f"{loc}: {msg}")
    return out


def load_spec(source: str | Path | dict[str, Any]) -> PipelineSpec:
    """Load and validate a spec from a YAML file path, YAML text or a dict.

    Raises:
        SpecError: naming each bad field (``source.params.nodes: ...``) and the file.
    """
    where: str | None = None
    if isinstance(source, dict):
        data: Any = source
    else:
        text = str(source)
        if isinstance(source, Path) or (text.endswith((".yaml", ".yml")) and "\n" not in text):
            path = Path(source)
            where = str(path)
            if not path.is_file():
                raise SpecError(f"spec file {path} does not exist")
            text = path.read_text()
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise SpecError(f"spec is not valid YAML: {exc}", file=where) from None
    if not isinstance(data, dict):
        raise SpecError("spec must be a YAML mapping with at least 'name' and 'source'", file=where)
    try:
        return PipelineSpec.model_validate(data)
    except ValidationError as exc:
        errors = _format_errors(exc)
        raise SpecError("invalid pipeline spec: " + "; ".join(errors), errors=errors, file=where) from None


def build_source(spec: PipelineSpec, settings: Settings) -> Source:
    """The source client a spec describes (its ``type``, ``dataset``, ``base_url`` and ``params``)."""
    from hmco.sources.base import get_source_class

    cls = get_source_class(spec.source.type)
    kwargs: dict[str, Any] = dict(spec.source.params)
    if spec.source.base_url is not None:
        kwargs["base_url"] = spec.source.base_url
    try:
        source: Source = cls(spec.source.dataset, settings=settings, **kwargs)
    except (TypeError, ValueError, ConfigError) as exc:
        raise SpecError(f"source.params: {exc}", errors=[f"source.params: {exc}"]) from None
    return source


def build_pipeline(
    spec: PipelineSpec | str | Path | dict[str, Any],
    *,
    settings: Settings | None = None,
    lake: Lake | None = None,
    extra_sinks: list[Any] | None = None,
    gate: bool | None = None,
    registry: Any = None,
) -> Pipeline:
    """Instantiate the source, gate and sinks a spec describes and compose them into a Pipeline.

    The spec's gate (the dataset's default suite with its ``checks:``) always runs unless ``gate=False``
    turns it off explicitly (``hmco run --no-gate``); every such run warns. ``registry``: the Prometheus
    registry the pipeline's metrics go to (default: the global one).
    """
    from hmco.compose.pipeline import Pipeline
    from hmco.config import Settings as _Settings
    from hmco.lake import Lake as _Lake

    if not isinstance(spec, PipelineSpec):
        spec = load_spec(spec)
    settings = settings or (lake.settings if lake else _Settings.load())
    lake = lake or _Lake(settings)
    source = build_source(spec, settings)
    from hmco.quality.spec import build_gate
    from hmco.sinks import SinkContext, build_sink

    # Fail closed: a spec'd pipeline always has its gate unless the caller says gate=False.
    chosen = False if gate is False else build_gate(source.dataset, spec.checks)
    ctx = SinkContext(settings, lake, source.dataset, spec.name, spec.publish_tier)
    # "iceberg" is the tier the pipeline publishes to; every other named sink is an extra one.
    sinks: list[Any] = [*(extra_sinks or []), *(build_sink(n, ctx) for n in spec.sinks if n != "iceberg")]
    return Pipeline(
        source,
        lake=lake,
        name=spec.name,
        transforms=[_resolve(t) for t in spec.transforms],
        gate=chosen,
        sinks=sinks,
        publish_tier=spec.publish_tier,
        stage=spec.stage,
        window_step=spec.window,
        registry=registry,
    )
