"""One typed settings object, read from a YAML file and KPI_* environment variables, validated at start.

Precedence: environment > YAML file > defaults. Nested keys use a double underscore in the
environment: KPI_KAFKA__BOOTSTRAP=127.0.0.1:9092. The YAML file is KPI_CONFIG or --config.
"""
from __future__ import annotations

import os
import ssl
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from .core.calendar import WEEKDAYS, parse_ranges
from .core.settings import (DAY_MS, DEFAULT_STALE_AFTER_MS, DEFAULT_UNIDENTIFIED_CUSTOMERS, STALE_CHANNELS, Calendar,
                            EngineSettings, QueueSettings, normalize_customer_id)


INTERVAL_CHOICES = (5, 10, 15, 30, 60)


class ConfigError(Exception):
    """Raised with a readable, multi-line explanation of what is wrong in the configuration."""


class CalendarConfig(BaseModel):
    """Business hours of a queue in its time zone: weekday -> list of "HH:MM-HH:MM" ranges, and holidays.

    hours:
      monday: ["08:00-12:00", "13:00-17:00"]
      saturday: ["09:00-13:00"]          # days not listed are closed
    holidays: [2026-12-25, 2027-01-01]
    """

    model_config = {"extra": "forbid"}
    hours: dict[str, list[str]] = {}
    holidays: list[date] = []

    @field_validator("hours")
    @classmethod
    def _weekdays_and_ranges(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        for day, ranges in v.items():
            if day.lower() not in WEEKDAYS and day.lower() not in {d[:3] for d in WEEKDAYS}:
                raise ValueError(f"{day!r} is not a weekday (monday ... sunday, or mon ... sun)")
            parse_ranges(ranges)  # raises ValueError with the reason
        return v

    def core(self) -> Calendar:
        by_day: list[tuple] = [()] * 7
        for day, ranges in self.hours.items():
            d = day.lower()
            i = WEEKDAYS.index(d) if d in WEEKDAYS else [w[:3] for w in WEEKDAYS].index(d)
            by_day[i] = tuple(sorted(set(by_day[i]) | set(parse_ranges(ranges))))
        return Calendar(hours=tuple(by_day), holidays=frozenset(h.isoformat() for h in self.holidays))


_STALE_DEFAULTS = {channel: ms / 1000 for channel, ms in DEFAULT_STALE_AFTER_MS}
_MAX_STALE_SECONDS = 366 * 86400


class StaleAfterConfig(BaseModel):
    """Per channel: seconds without any event after which a contact still waiting in a queue (or with an
    agent leg not wrapped up) is given up as stale; null = never. `unknown`: no contact.created seen."""

    model_config = {"extra": "forbid"}
    voice: float | None = Field(_STALE_DEFAULTS["voice"], ge=60, le=_MAX_STALE_SECONDS)
    chat: float | None = Field(_STALE_DEFAULTS["chat"], ge=60, le=_MAX_STALE_SECONDS)
    email: float | None = Field(_STALE_DEFAULTS["email"], ge=60, le=_MAX_STALE_SECONDS)
    messaging: float | None = Field(_STALE_DEFAULTS["messaging"], ge=60, le=_MAX_STALE_SECONDS)
    social: float | None = Field(_STALE_DEFAULTS["social"], ge=60, le=_MAX_STALE_SECONDS)
    ticket: float | None = Field(_STALE_DEFAULTS["ticket"], ge=60, le=_MAX_STALE_SECONDS)
    unknown: float | None = Field(_STALE_DEFAULTS["unknown"], ge=60, le=_MAX_STALE_SECONDS)

    @field_validator(*STALE_CHANNELS, mode="before")
    @classmethod
    def _off(cls, v: Any) -> Any:
        """`null` in YAML; in the environment (strings only) `null`, `none` or `off` as well."""
        return None if isinstance(v, str) and v.strip().lower() in ("null", "none", "off") else v

    def core(self) -> tuple[tuple[str, int | None], ...]:
        return tuple((c, None if getattr(self, c) is None else round(getattr(self, c) * 1000)) for c in STALE_CHANNELS)


class QueueConfig(BaseModel):
    model_config = {"extra": "forbid"}
    threshold_seconds: float = Field(20.0, gt=0, le=86400)
    short_abandon_seconds: float = Field(5.0, ge=0, le=3600)
    service_level_target: float = Field(0.80, gt=0, le=1)
    time_zone: str = "UTC"
    # Optional: business hours (FRT / TTR in business time), agent-hour cost (cost per contact),
    # and the capacity model's planning factors.
    calendar: CalendarConfig | None = None
    agent_hour_cost: float | None = Field(None, ge=0, le=1_000_000)
    availability: float = Field(1.0, gt=0, le=1)
    occupancy_target: float = Field(0.85, gt=0, le=1)
    # Staleness of contacts whose end event is lost, per channel (see StaleAfterConfig).
    stale_after_seconds: StaleAfterConfig = StaleAfterConfig()
    # Foresight (docs/staffing.md): contacts whose wait passes T within at_risk_seconds are "at risk";
    # live Erlang staffing reads the last staffing_window_minutes (minute buckets are kept for 60).
    at_risk_seconds: float = Field(10.0, ge=0, le=3600)
    staffing_window_minutes: int = Field(30, ge=5, le=60)

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r} (use an IANA name such as Europe/Paris)") from None
        return v


TLS_PROTOCOLS = ("SSL", "SASL_SSL")


class KafkaConfig(BaseModel):
    # hide_input_in_errors: a validation error never repeats the values given (passwords included).
    model_config = {"extra": "forbid", "hide_input_in_errors": True}
    bootstrap: str = "127.0.0.1:9092"
    input_topic: str = "contact-events"
    rollup_topic: str = "contact-rollups"
    dead_letter_topic: str = "contact-events-dead-letter"
    facts_topic: str = "contact-kpi-facts"
    partitions: int = Field(4, ge=1, le=1024)
    replication_factor: int = Field(1, ge=1)
    processing_guarantee: Literal["at_least_once", "exactly_once"] = "at_least_once"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    # Client certificate (mutual TLS): PEM certificate (chain) and its PEM private key, encrypted or not.
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    ssl_key_password: SecretStr | None = None
    # How long the group waits for a crashed worker before handing its partitions over.
    session_timeout_seconds: float = Field(10.0, ge=6, le=300)
    # Warm copies of other workers' tables (Faust's table_standby_replicas): a takeover then reads only the
    # changelog's tail, but every worker also reads every other worker's changelog records all the time.
    standby_replicas: int = Field(1, ge=0, le=8)
    # How long a command retries an unreachable broker at start (backoff 0.5, 1, 2, then 4 s) before it gives up.
    connect_wait_seconds: float = Field(30.0, ge=0, le=3600)

    @field_validator("ssl_cafile", "ssl_certfile", "ssl_keyfile")
    @classmethod
    def _file_exists(cls, v: Path | None) -> Path | None:
        if v is not None and not v.is_file():
            raise ValueError(f"{v} is not a file")
        return v

    @model_validator(mode="after")
    def _client_certificate(self) -> "KafkaConfig":
        """certfile and keyfile together, with SSL or SASL_SSL only, and loadable (so a wrong key or key
        password stops the start with a readable reason, never with the password)."""
        cert, key = self.ssl_certfile, self.ssl_keyfile
        if (cert is None) != (key is None):
            given, missing = ("ssl_certfile", "ssl_keyfile") if key is None else ("ssl_keyfile", "ssl_certfile")
            raise ValueError(f"{given} is set but {missing} is not: a client certificate needs both "
                             "(the certificate and its private key)")
        if self.ssl_key_password is not None and key is None:
            raise ValueError("ssl_key_password is set but ssl_keyfile is not")
        if cert is not None and self.security_protocol not in TLS_PROTOCOLS:
            raise ValueError(f"ssl_certfile / ssl_keyfile need security_protocol SSL or SASL_SSL "
                             f"(it is {self.security_protocol}): a client certificate is sent over TLS only")
        if self.security_protocol in TLS_PROTOCOLS:
            self.ssl_context()  # raises ValueError saying what is wrong
        return self

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context of every Kafka client of the processor (Faust's consumers and producers,
        the plain aiokafka clients, kafka-python's admin client); None unless SSL or SASL_SSL.

        The broker's certificate and host name are checked against `ssl_cafile` (else the system
        CAs); with `ssl_certfile` / `ssl_keyfile` the client presents its certificate (mutual TLS).
        """
        if self.security_protocol not in TLS_PROTOCOLS:
            return None
        try:
            ctx = ssl.create_default_context(cafile=str(self.ssl_cafile) if self.ssl_cafile else None)
        except (ssl.SSLError, OSError) as exc:
            raise ValueError(f"ssl_cafile {self.ssl_cafile}: no CA certificate can be read from it ({exc})") from None
        if self.ssl_certfile is not None and self.ssl_keyfile is not None:
            _load_client_certificate(ctx, self.ssl_certfile, self.ssl_keyfile, self.ssl_key_password)
        return ctx

    @property
    def journeys_topic(self) -> str:
        """Internal topic of journey facts keyed by customer: named after the facts topic, not a setting."""
        return f"{self.facts_topic}-journeys"


def _load_client_certificate(ctx: ssl.SSLContext, cert: Path, key: Path, password: SecretStr | None) -> None:
    """ctx.load_cert_chain, with a reason a person can act on instead of OpenSSL's "PEM lib".

    A password is always handed over ("" when none is set), so an encrypted key without one fails
    instead of OpenSSL asking for it on the terminal.
    """
    try:
        ctx.load_cert_chain(cert, key, password=password.get_secret_value() if password is not None else "")
        return
    except ssl.SSLError as exc:
        reason = getattr(exc, "reason", None)
    except OSError as exc:
        raise ValueError(f"cannot read the client certificate {cert} or key {key}: {exc.strerror}") from None
    cert_text = cert.read_text(errors="replace")
    key_text = key.read_text(errors="replace")
    if "-----BEGIN CERTIFICATE-----" not in cert_text:
        raise ValueError(f"ssl_certfile {cert} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
    if "PRIVATE KEY-----" not in key_text:
        raise ValueError(f"ssl_keyfile {key} holds no PEM private key (-----BEGIN ... PRIVATE KEY-----)")
    if reason == "KEY_VALUES_MISMATCH":
        raise ValueError(f"ssl_keyfile {key} is not the private key of ssl_certfile {cert}")
    if "ENCRYPTED" in key_text:
        raise ValueError(f"ssl_keyfile {key} is encrypted and cannot be decrypted: ssl_key_password is "
                         + ("wrong" if password is not None else "not set"))
    raise ValueError(f"cannot load the client certificate {cert} with key {key} ({reason or 'invalid PEM'})")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KPI_", env_nested_delimiter="__", extra="forbid",
                                      hide_input_in_errors=True)

    app_id: str = "contact-kpi"
    kafka: KafkaConfig = KafkaConfig()
    web_host: str = "127.0.0.1"
    web_port: int = Field(6066, ge=0, le=65535)
    data_dir: Path = Path("./.kpi-data")
    store: str = "memory://"
    redis_url: SecretStr | None = None
    interval_minutes: int = 15
    lateness_seconds: float = Field(30.0, ge=0, le=3600)
    retention_seconds: float = Field(7200.0, ge=60, le=7 * 86400)
    # A worker (and `kpi replay`, from its wall clock at start) dead-letters events whose time is further
    # ahead of the wall clock than this ("from_the_future"): clock skew of a source is tolerated, a broken clock is not.
    max_future_seconds: float = Field(300.0, ge=1, le=7 * 86400)
    recontact_window_days: float = Field(7.0, gt=0, le=90)
    # A worker collects its frozen objects once every this many hours (processor/gc_policy.py): a pause of
    # seconds at gigabytes of state, and between two of them the cyclic garbage the freezes kept waits.
    gc_sweep_hours: float = Field(24.0, gt=0, le=7 * 24)
    # Customer ids that mean "not identified" (docs/unidentified-customers.md): compared after trimming
    # spaces and ignoring case; an absent or empty id is always unidentified. Replaces the default list
    # (KPI_UNIDENTIFIED_CUSTOMER_IDS='["0", "anonymous", "unknown", "guest"]'; [] keeps only "empty").
    unidentified_customer_ids: list[str] = Field(default_factory=lambda: sorted(DEFAULT_UNIDENTIFIED_CUSTOMERS),
                                                 max_length=1000)
    defaults: QueueConfig = QueueConfig()
    queues: dict[str, QueueConfig] = {}

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, v: SecretStr | None) -> SecretStr | None:
        """redis:// (password as redis://:PASSWORD@host), rediss:// (TLS) or unix://; never echoed in the error."""
        if v is None:
            return v
        url = v.get_secret_value()
        try:
            parts = urlsplit(url)
            _ = parts.port  # raises ValueError on a port that is not a number
        except ValueError:
            raise ValueError("is not a valid URL (percent-encode special characters of the password)") from None
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ValueError("must be a redis://, rediss:// (TLS) or unix:// URL") from None
        return v

    @field_validator("unidentified_customer_ids")
    @classmethod
    def _ids_are_short(cls, v: list[str]) -> list[str]:
        for c in v:
            if len(c) > 200:
                raise ValueError("each id is at most 200 characters (as a customer_id is)")
        return v

    @field_validator("interval_minutes")
    @classmethod
    def _interval_divides_the_hour(cls, v: int) -> int:
        if v not in INTERVAL_CHOICES:
            raise ValueError("must be 5, 10, 15, 30 or 60 (minutes)")
        return v

    @model_validator(mode="before")
    @classmethod
    def _queues_inherit_defaults(cls, data: Any) -> Any:
        """A queue entry names only what differs: the rest comes from `defaults`, then the built-ins."""
        if not isinstance(data, dict):
            return data
        defaults, queues = data.get("defaults"), data.get("queues")
        if isinstance(defaults, BaseModel):
            defaults = defaults.model_dump()
        if isinstance(defaults, dict) and isinstance(queues, dict):
            data = dict(data)
            data["queues"] = {name: (_inherit(defaults, q) if isinstance(q, dict) else q) for name, q in queues.items()}
        return data

    @model_validator(mode="after")
    def _intervals_align_with_local_days(self) -> "Settings":
        """'today' sums whole intervals from local midnight, so midnight must fall on an interval edge."""
        zones = {self.defaults.time_zone} | {q.time_zone for q in self.queues.values()}
        year = datetime.now().year
        for tz_name in sorted(zones):
            tz = ZoneInfo(tz_name)
            for month in (1, 7):
                offset = datetime(year, month, 1, tzinfo=tz).utcoffset()
                if offset.total_seconds() % (self.interval_minutes * 60):
                    raise ValueError(
                        f"time zone {tz_name} (UTC offset {offset}) does not start its days on a "
                        f"{self.interval_minutes}-minute interval edge; use interval_minutes 15 or less"
                    )
        if self.retention_seconds < self.lateness_seconds + self.interval_minutes * 60:
            raise ValueError("retention_seconds must cover lateness_seconds plus one interval")
        return self

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings):
        return (init_settings, env_settings, _YamlSource(settings_cls))

    def engine(self) -> EngineSettings:
        """The pure core's view of these settings."""
        def qs(c: QueueConfig) -> QueueSettings:
            return QueueSettings(c.threshold_seconds, c.short_abandon_seconds, c.service_level_target, c.time_zone,
                                 calendar=c.calendar.core() if c.calendar is not None else None,
                                 agent_hour_cost=c.agent_hour_cost, availability=c.availability,
                                 occupancy_target=c.occupancy_target, stale_after_ms=c.stale_after_seconds.core(),
                                 at_risk_seconds=c.at_risk_seconds, staffing_window_minutes=c.staffing_window_minutes)
        return EngineSettings(
            interval_minutes=self.interval_minutes,
            lateness_ms=round(self.lateness_seconds * 1000),
            retention_ms=round(self.retention_seconds * 1000),
            default_queue=qs(self.defaults),
            queues=tuple(sorted((name, qs(c)) for name, c in self.queues.items())),
            recontact_window_ms=round(self.recontact_window_days * DAY_MS),
            unidentified_customers=frozenset(normalize_customer_id(c) for c in self.unidentified_customer_ids) | {""},
        )


def _inherit(defaults: dict, queue: dict) -> dict:
    """A queue entry over `defaults`; the per-channel staleness table is merged channel by channel."""
    out = {**defaults, **queue}
    d, q = defaults.get("stale_after_seconds"), queue.get("stale_after_seconds")
    if isinstance(d, BaseModel):
        d = d.model_dump()
    if isinstance(d, dict) and isinstance(q, dict):
        out["stale_after_seconds"] = {**d, **q}
    return out


class _YamlSource(PydanticBaseSettingsSource):
    def get_field_value(self, field, field_name):  # pragma: no cover - whole-file source
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = os.environ.get("KPI_CONFIG")
        if not path:
            return {}
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"configuration file {p} (KPI_CONFIG) does not exist")
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"configuration file {p} is not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"configuration file {p} must hold a mapping at the top level")
        return data


def load_settings(config_path: str | Path | None = None, **overrides: Any) -> Settings:
    """Read and validate the settings; raise ConfigError with every problem listed.

    ``config_path`` wins over KPI_CONFIG for this call only.
    """
    saved = os.environ.get("KPI_CONFIG")
    if config_path is not None:
        os.environ["KPI_CONFIG"] = str(config_path)
    source = os.environ.get("KPI_CONFIG") or "environment only"
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = [f"invalid configuration ({source}):"]
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "(top level)"
            lines.append(f"  - {where}: {err['msg']}")
        raise ConfigError("\n".join(lines)) from None
    except SettingsError as exc:  # e.g. malformed JSON in a mapping-valued KPI_* variable
        raise ConfigError(f"invalid configuration ({source}): {exc}") from None
    finally:
        if config_path is not None:
            if saved is None:
                os.environ.pop("KPI_CONFIG", None)
            else:
                os.environ["KPI_CONFIG"] = saved
