"""processor/config.py: defaults, environment (KPI_*, `__` nesting), YAML file, per-queue lookup,
readable validation errors, and the deployment files that feed it (example YAML, docker-compose)."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml

from processor import cli
from processor.config import ConfigError, KafkaConfig, QueueConfig, Settings, load_settings
from processor.core.settings import EngineSettings, QueueSettings
from tests.tls import encrypt_key, make_pki

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "deploy" / "config" / "queues.example.yaml"
COMPOSE = ROOT / "docker-compose.yml"
CONFIG_DOC = ROOT / "docs" / "configuration.md"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    """No KPI_* variable from the caller's shell; and undo KPI_CONFIG, which load_settings(path) sets."""
    for name in list(os.environ):
        if name.upper().startswith("KPI_"):
            monkeypatch.delenv(name)
    # setenv then delenv records "absent" as the value to restore, whatever a test sets later.
    monkeypatch.setenv("KPI_CONFIG", "unused")
    monkeypatch.delenv("KPI_CONFIG")


def write(tmp_path: Path, text: str, name: str = "kpi.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def error_lines(exc: pytest.ExceptionInfo) -> list[str]:
    return str(exc.value).splitlines()


# ----------------------------------------------------------------------------------- defaults

def test_defaults_match_the_contract():
    s = load_settings()
    assert s.app_id == "contact-kpi"
    assert s.web_host == "127.0.0.1"
    assert s.web_port == 6066
    assert s.store == "memory://"
    assert s.redis_url is None
    assert s.interval_minutes == 15
    assert s.lateness_seconds == 30.0
    assert s.retention_seconds == 7200.0
    assert s.data_dir == Path("./.kpi-data")
    assert s.queues == {}
    # contract §2: T = 20 s, S = 5 s, target 0.80, UTC
    assert s.defaults == QueueConfig(threshold_seconds=20, short_abandon_seconds=5,
                                     service_level_target=0.8, time_zone="UTC")


def test_kafka_defaults():
    k = load_settings().kafka
    assert k.bootstrap == "127.0.0.1:9092"
    assert (k.input_topic, k.facts_topic, k.rollup_topic, k.dead_letter_topic) == (
        "contact-events", "contact-kpi-facts", "contact-rollups", "contact-events-dead-letter")
    assert k.partitions == 4
    assert k.replication_factor == 1
    assert k.processing_guarantee == "at_least_once"
    assert k.security_protocol == "PLAINTEXT"
    assert k.sasl_mechanism == "PLAIN"
    assert k.sasl_username is None and k.sasl_password is None and k.ssl_cafile is None
    assert k.ssl_certfile is None and k.ssl_keyfile is None and k.ssl_key_password is None
    assert k.session_timeout_seconds == 10.0


def test_engine_view_of_the_defaults():
    e = load_settings().engine()
    assert e == EngineSettings(interval_minutes=15, lateness_ms=30_000, retention_ms=7_200_000,
                               default_queue=QueueSettings(20.0, 5.0, 0.8, "UTC"), queues=())
    assert e.interval_ms == 15 * 60_000


# ----------------------------------------------------------------------------------- environment

def test_env_overrides_top_level_and_nested_keys(monkeypatch):
    monkeypatch.setenv("KPI_WEB_PORT", "7001")
    monkeypatch.setenv("KPI_LATENESS_SECONDS", "12.5")
    monkeypatch.setenv("KPI_KAFKA__BOOTSTRAP", "kafka-1:9092,kafka-2:9092")
    monkeypatch.setenv("KPI_KAFKA__PARTITIONS", "12")
    monkeypatch.setenv("KPI_KAFKA__PROCESSING_GUARANTEE", "at_least_once")
    monkeypatch.setenv("KPI_DEFAULTS__THRESHOLD_SECONDS", "15")
    monkeypatch.setenv("KPI_DEFAULTS__TIME_ZONE", "Europe/Paris")
    s = load_settings()
    assert s.web_port == 7001
    assert s.lateness_seconds == 12.5
    assert s.kafka.bootstrap == "kafka-1:9092,kafka-2:9092"
    assert s.kafka.partitions == 12
    assert s.kafka.processing_guarantee == "at_least_once"
    assert s.kafka.input_topic == "contact-events"  # untouched siblings keep their defaults
    assert s.defaults.threshold_seconds == 15
    assert s.defaults.time_zone == "Europe/Paris"
    assert s.defaults.short_abandon_seconds == 5
    e = s.engine()
    assert e.lateness_ms == 12_500
    assert e.default_queue.threshold_ms == 15_000


def test_env_sets_the_interval(monkeypatch):
    monkeypatch.setenv("KPI_INTERVAL_MINUTES", "5")
    assert load_settings().interval_minutes == 5


def test_env_can_define_a_queue(monkeypatch):
    monkeypatch.setenv("KPI_QUEUES__VIP__THRESHOLD_SECONDS", "10")
    monkeypatch.setenv("KPI_QUEUES__VIP__SERVICE_LEVEL_TARGET", "0.95")
    s = load_settings()
    assert s.queues["vip"].threshold_seconds == 10
    assert s.queues["vip"].service_level_target == 0.95


def test_env_secrets_are_not_printed(monkeypatch):
    monkeypatch.setenv("KPI_REDIS_URL", "redis://:hunter2@redis:6379/0")
    monkeypatch.setenv("KPI_KAFKA__SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("KPI_KAFKA__SASL_USERNAME", "kpi")
    monkeypatch.setenv("KPI_KAFKA__SASL_PASSWORD", "s3cret")
    s = load_settings()
    assert s.redis_url.get_secret_value() == "redis://:hunter2@redis:6379/0"
    assert s.kafka.sasl_password.get_secret_value() == "s3cret"
    assert "hunter2" not in repr(s) and "s3cret" not in repr(s)
    assert "hunter2" not in str(s) and "s3cret" not in str(s)


# ----------------------------------------------------------------------------------- YAML file

def test_yaml_file_is_read(tmp_path):
    path = write(tmp_path, """
app_id: kpi-test
interval_minutes: 30
lateness_seconds: 45
kafka:
  bootstrap: broker:9092
  partitions: 8
defaults:
  threshold_seconds: 25
queues:
  billing:
    threshold_seconds: 60
    short_abandon_seconds: 10
    service_level_target: 0.7
    time_zone: America/New_York
""")
    s = load_settings(path)
    assert s.app_id == "kpi-test"
    assert s.interval_minutes == 30
    assert s.lateness_seconds == 45
    assert s.kafka.bootstrap == "broker:9092"
    assert s.kafka.partitions == 8
    assert s.kafka.rollup_topic == "contact-rollups"
    assert s.defaults.threshold_seconds == 25
    assert s.queues["billing"] == QueueConfig(threshold_seconds=60, short_abandon_seconds=10,
                                              service_level_target=0.7, time_zone="America/New_York")


def test_yaml_file_from_kpi_config_env(tmp_path, monkeypatch):
    monkeypatch.setenv("KPI_CONFIG", str(write(tmp_path, "web_port: 7777\n")))
    assert load_settings().web_port == 7777


def test_environment_beats_yaml_and_merges_nested_keys(tmp_path, monkeypatch):
    path = write(tmp_path, "web_port: 7777\nkafka:\n  bootstrap: from-yaml:9092\n  partitions: 8\n")
    monkeypatch.setenv("KPI_WEB_PORT", "8888")
    monkeypatch.setenv("KPI_KAFKA__BOOTSTRAP", "from-env:9092")
    s = load_settings(path)
    assert s.web_port == 8888
    assert s.kafka.bootstrap == "from-env:9092"
    assert s.kafka.partitions == 8  # the YAML's sibling key survives the env override


def test_empty_yaml_file_means_defaults(tmp_path):
    assert load_settings(write(tmp_path, "# nothing but a comment\n")) == load_settings()


def test_missing_yaml_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.yaml")


def test_yaml_syntax_error(tmp_path):
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(write(tmp_path, "queues: [sales\n"))


def test_yaml_top_level_must_be_a_mapping(tmp_path):
    with pytest.raises(ConfigError, match="mapping at the top level"):
        load_settings(write(tmp_path, "- sales\n- support\n"))


# ----------------------------------------------------------------------------------- client certificate (mTLS)

KEY_PASSWORD = "key-Pw-5e1c"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    pki = make_pki(tmp_path_factory.mktemp("pki"))
    encrypt_key(pki.client_key, pki.dir / "client.enc.key", KEY_PASSWORD)
    return pki


def test_client_certificate_from_yaml_and_environment(tmp_path, monkeypatch, pki):
    path = write(tmp_path, f"""
kafka:
  security_protocol: SSL
  ssl_cafile: {pki.ca}
  ssl_certfile: {pki.client_cert}
  ssl_keyfile: {pki.dir / "client.enc.key"}
""")
    monkeypatch.setenv("KPI_KAFKA__SSL_KEY_PASSWORD", KEY_PASSWORD)
    k = load_settings(path).kafka
    assert (k.ssl_cafile, k.ssl_certfile, k.ssl_keyfile) == (pki.ca, pki.client_cert, pki.dir / "client.enc.key")
    assert k.ssl_key_password.get_secret_value() == KEY_PASSWORD
    assert k.ssl_context().get_ca_certs()[0]["subject"] == ((("commonName", "kpi-test-ca"),),)
    # the same through the environment only, an unencrypted key without password, over SASL_SSL
    for name, value in {"SECURITY_PROTOCOL": "SASL_SSL", "SSL_CAFILE": pki.ca, "SSL_CERTFILE": pki.client_cert,
                        "SSL_KEYFILE": pki.client_key}.items():
        monkeypatch.setenv(f"KPI_KAFKA__{name}", str(value))
    monkeypatch.delenv("KPI_KAFKA__SSL_KEY_PASSWORD")
    k = load_settings().kafka
    assert (k.security_protocol, k.ssl_keyfile, k.ssl_key_password) == ("SASL_SSL", pki.client_key, None)
    assert k.ssl_context() is not None
    assert KafkaConfig().ssl_context() is None  # PLAINTEXT: no TLS


@pytest.mark.parametrize("case", [
    "certfile without keyfile", "keyfile without certfile", "key password without keyfile", "certfile missing",
    "cafile missing", "plaintext", "sasl_plaintext", "wrong key password", "no key password", "key of another",
    "not a certificate", "not a key", "cafile not a certificate"])
def test_client_certificate_errors_name_the_problem_not_the_password(tmp_path, pki, case):
    enc = pki.dir / "client.enc.key"
    kafka = {"security_protocol": "SSL", "ssl_cafile": pki.ca, "ssl_certfile": pki.client_cert, "ssl_keyfile": enc,
             "ssl_key_password": KEY_PASSWORD}
    wrong = "wrong-Pw-0d4a"
    change, field, words = {
        "certfile without keyfile": ({"ssl_keyfile": None, "ssl_key_password": None}, "kafka",
                                     "ssl_certfile is set but ssl_keyfile is not"),
        "keyfile without certfile": ({"ssl_certfile": None}, "kafka", "ssl_keyfile is set but ssl_certfile is not"),
        "key password without keyfile": ({"ssl_certfile": None, "ssl_keyfile": None}, "kafka",
                                         "ssl_key_password is set but ssl_keyfile is not"),
        "certfile missing": ({"ssl_certfile": tmp_path / "nope.pem"}, "kafka.ssl_certfile", "nope.pem is not a file"),
        "cafile missing": ({"ssl_cafile": tmp_path / "ca.pem"}, "kafka.ssl_cafile", "ca.pem is not a file"),
        "plaintext": ({"security_protocol": "PLAINTEXT"}, "kafka", "need security_protocol SSL or SASL_SSL"),
        "sasl_plaintext": ({"security_protocol": "SASL_PLAINTEXT"}, "kafka", "(it is SASL_PLAINTEXT)"),
        "wrong key password": ({"ssl_key_password": wrong}, "kafka", "ssl_key_password is wrong"),
        "no key password": ({"ssl_key_password": None}, "kafka", "ssl_key_password is not set"),
        "key of another": ({"ssl_keyfile": pki.server_key, "ssl_key_password": None}, "kafka",
                           "is not the private key of ssl_certfile"),
        "not a certificate": ({"ssl_certfile": pki.client_key}, "kafka", "holds no PEM certificate"),
        "not a key": ({"ssl_keyfile": pki.client_cert}, "kafka", "holds no PEM private key"),
        "cafile not a certificate": ({"ssl_cafile": pki.client_key}, "kafka", "no CA certificate can be read"),
    }[case]
    kafka = {k: v for k, v in {**kafka, **change}.items() if v is not None}
    path = write(tmp_path, yaml.safe_dump({"kafka": {k: str(v) for k, v in kafka.items()}}))
    with pytest.raises(ConfigError) as exc:
        load_settings(path)
    lines = error_lines(exc)
    assert any(line.startswith(f"  - {field}: ") and words in line for line in lines[1:]), lines
    assert KEY_PASSWORD not in str(exc.value) and wrong not in str(exc.value)


# ----------------------------------------------------------------------------------- per-queue lookup

def test_per_queue_lookup_falls_back_to_defaults(tmp_path):
    path = write(tmp_path, """
defaults:
  threshold_seconds: 30
  short_abandon_seconds: 4
  service_level_target: 0.75
  time_zone: Europe/London
queues:
  sales:
    threshold_seconds: 10
    short_abandon_seconds: 2
    service_level_target: 0.9
    time_zone: Asia/Tokyo
""")
    e = load_settings(path).engine()
    assert e.queue("sales") == QueueSettings(10.0, 2.0, 0.9, "Asia/Tokyo")
    assert e.queue("sales").threshold_ms == 10_000
    assert e.queue("sales").short_abandon_ms == 2_000
    # an unlisted queue gets `defaults`
    assert e.queue("never-configured") == QueueSettings(30.0, 4.0, 0.75, "Europe/London")
    assert e.queue("Sales") == e.default_queue  # queue ids are compared exactly


def test_engine_queues_are_sorted_and_hashable():
    s = Settings(queues={"zeta": QueueConfig(), "alpha": QueueConfig(threshold_seconds=9)})
    e = s.engine()
    assert [name for name, _ in e.queues] == ["alpha", "zeta"]
    hash(e)  # frozen: the core caches lookups on it


# ----------------------------------------------------------------------------------- validation

@pytest.mark.parametrize(
    ("yaml_text", "field", "words"),
    [
        ("queues:\n  sales:\n    threshold_seconds: -5\n", "queues.sales.threshold_seconds", "greater than 0"),
        ("queues:\n  sales:\n    threshold_seconds: 0\n", "queues.sales.threshold_seconds", "greater than 0"),
        ("defaults:\n  short_abandon_seconds: -1\n", "defaults.short_abandon_seconds", "greater than or equal to 0"),
        ("queues:\n  sales:\n    service_level_target: 1.2\n", "queues.sales.service_level_target", "less than or equal to 1"),
        ("defaults:\n  service_level_target: 0\n", "defaults.service_level_target", "greater than 0"),
        ("queues:\n  sales:\n    time_zone: Mars/Olympus_Mons\n", "queues.sales.time_zone", "unknown time zone 'Mars/Olympus_Mons'"),
        ("interval_minutes: 7\n", "interval_minutes", "5, 10, 15, 30 or 60"),
        ("lateness_seconds: -1\n", "lateness_seconds", "greater than or equal to 0"),
        ("web_port: 70000\n", "web_port", "less than or equal to 65535"),
        ("kafka:\n  partitions: 0\n", "kafka.partitions", "greater than or equal to 1"),
        ("kafka:\n  session_timeout_seconds: 1\n", "kafka.session_timeout_seconds", "greater than or equal to 6"),
        ("kafka:\n  processing_guarantee: maybe_once\n", "kafka.processing_guarantee", "'at_least_once' or 'exactly_once'"),
        ("queues:\n  sales:\n    threshold: 20\n", "queues.sales.threshold", "Extra inputs are not permitted"),
        ("kafka:\n  bootstrap_servers: x:9092\n", "kafka.bootstrap_servers", "Extra inputs are not permitted"),
        ("no_such_setting: 1\n", "no_such_setting", "Extra inputs are not permitted"),
    ],
)
def test_validation_error_names_the_bad_field(tmp_path, yaml_text, field, words):
    path = write(tmp_path, yaml_text)
    with pytest.raises(ConfigError) as exc:
        load_settings(path)
    lines = error_lines(exc)
    assert lines[0] == f"invalid configuration ({path}):"
    assert any(line.startswith(f"  - {field}: ") and words in line for line in lines[1:]), lines


def test_every_problem_is_listed_at_once(tmp_path):
    path = write(tmp_path, """
queues:
  sales:
    threshold_seconds: -1
    service_level_target: 2
    time_zone: Nowhere/Special
""")
    with pytest.raises(ConfigError) as exc:
        load_settings(path)
    fields = {line.split(":")[0].strip(" -") for line in error_lines(exc)[1:]}
    assert fields == {"queues.sales.threshold_seconds", "queues.sales.service_level_target", "queues.sales.time_zone"}


def test_env_validation_error_names_the_variable_path(monkeypatch):
    monkeypatch.setenv("KPI_DEFAULTS__SERVICE_LEVEL_TARGET", "1.5")
    with pytest.raises(ConfigError) as exc:
        load_settings()
    lines = error_lines(exc)
    assert lines[0] == "invalid configuration (environment only):"
    assert any(line.startswith("  - defaults.service_level_target: ") for line in lines[1:]), lines


def test_malformed_json_in_env_is_a_config_error(monkeypatch):
    monkeypatch.setenv("KPI_QUEUES", "{not json")
    with pytest.raises(ConfigError, match="queues"):
        load_settings()


@pytest.mark.parametrize(
    ("interval", "zone"),
    [(60, "Asia/Kolkata"),       # UTC+05:30: local midnight is not on an hour edge
     (30, "Asia/Kathmandu"),     # UTC+05:45
     (60, "Australia/Adelaide")],  # UTC+09:30 / +10:30
)
def test_interval_must_align_with_local_midnight(tmp_path, interval, zone):
    path = write(tmp_path, f"interval_minutes: {interval}\nqueues:\n  q1:\n    time_zone: {zone}\n")
    with pytest.raises(ConfigError) as exc:
        load_settings(path)
    text = str(exc.value)
    assert f"time zone {zone}" in text
    assert f"{interval}-minute interval edge" in text
    assert "interval_minutes" in text


@pytest.mark.parametrize(("interval", "zone"), [(15, "Asia/Kolkata"), (15, "Asia/Kathmandu"),
                                                 (60, "America/New_York"), (30, "Asia/Kolkata")])
def test_aligned_intervals_are_accepted(tmp_path, interval, zone):
    path = write(tmp_path, f"interval_minutes: {interval}\ndefaults:\n  time_zone: {zone}\n")
    assert load_settings(path).interval_minutes == interval


def test_retention_must_cover_lateness_and_one_interval(tmp_path):
    path = write(tmp_path, "interval_minutes: 60\nlateness_seconds: 600\nretention_seconds: 3600\n")
    with pytest.raises(ConfigError, match="retention_seconds must cover lateness_seconds plus one interval"):
        load_settings(path)
    ok = write(tmp_path, "interval_minutes: 60\nlateness_seconds: 600\nretention_seconds: 4200\n", "ok.yaml")
    assert load_settings(ok).retention_seconds == 4200


def test_cli_reports_a_bad_config_and_exits_2(tmp_path, capsys):
    path = write(tmp_path, "queues:\n  sales:\n    service_level_target: 3\n")
    events = write(tmp_path, "", "events.jsonl")
    with pytest.raises(SystemExit) as exc:
        cli.main(["replay", "--input", str(events), "--output", str(tmp_path / "out.jsonl"), "--config", str(path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "queues.sales.service_level_target" in err
    assert "Traceback" not in err


# ----------------------------------------------------------------------------------- shipped files

def test_example_queues_file_loads():
    s = load_settings(EXAMPLE)
    assert s.interval_minutes == 15
    assert s.lateness_seconds == 30
    assert set(s.queues) == {"sales", "support"}
    e = s.engine()
    assert e.queue("sales") == QueueSettings(20.0, 5.0, 0.8, "Europe/Paris")
    support = e.queue("support")
    assert (support.threshold_seconds, support.short_abandon_seconds, support.service_level_target,
            support.time_zone) == (30.0, 8.0, 0.9, "America/New_York")
    assert (support.agent_hour_cost, support.availability, support.occupancy_target) == (42.0, 0.9, 0.85)
    assert support.calendar.hours[0] == ((480, 720), (780, 1080)) and support.calendar.hours[5] == ()
    assert "2026-12-25" in support.calendar.holidays
    assert s.recontact_window_days == 7
    assert e.queue("other") == QueueSettings(20.0, 5.0, 0.8, "UTC")
    # every queue sets every service-level field (see the comment in the file); calendar, cost and
    # capacity-model fields are optional
    raw = yaml.safe_load(EXAMPLE.read_text())
    for name, q in raw["queues"].items():
        assert {"threshold_seconds", "short_abandon_seconds", "service_level_target", "time_zone"} <= set(q), name
        assert set(q) <= set(QueueConfig.model_fields), name


def test_configuration_page_shows_the_example_file_verbatim():
    page = CONFIG_DOC.read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", page, flags=re.S)
    assert EXAMPLE.read_text() in blocks


def _compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def _kpi_services() -> dict[str, dict]:
    return {name: svc for name, svc in _compose()["services"].items() if svc.get("image", "").startswith("contact-kpi")}


def test_compose_env_names_are_settings(monkeypatch):
    services = _kpi_services()
    assert {"processor-1", "processor-2", "sample-feed"} <= set(services)
    top = set(Settings.model_fields) | {"config"}
    nested = {"kafka": set(KafkaConfig.model_fields), "defaults": set(QueueConfig.model_fields)}
    for name, svc in services.items():
        for var in svc.get("environment", {}) or {}:
            assert var.startswith("KPI_"), (name, var)
            head, *rest = var[4:].lower().split("__")
            assert head in top, (name, var)
            if rest:
                assert rest[0] in nested[head], (name, var)


def test_compose_worker_environment_loads(monkeypatch):
    env = _kpi_services()["processor-1"]["environment"]
    for var, value in env.items():
        monkeypatch.setenv(var, str(value))
    monkeypatch.setenv("KPI_CONFIG", str(EXAMPLE))  # mounted at /etc/kpi/queues.yaml in the container
    s = load_settings()
    assert s.kafka.bootstrap == "kafka:9092"
    assert s.web_host == "0.0.0.0" and s.web_port == 6066
    assert set(s.queues) == {"sales", "support"}


def test_compose_commands_parse(monkeypatch):
    from processor.ingest import shell as ingest

    seen = []
    for fn in ("cmd_replay", "cmd_worker", "cmd_simulate", "cmd_produce", "cmd_run"):
        monkeypatch.setattr(cli, fn, lambda args, fn=fn: seen.append((fn, args)) or 0)
    for fn in ("cmd_asterisk", "cmd_csv"):  # the optional adapters (profiles asterisk, csv)
        monkeypatch.setattr(ingest, fn, lambda args, fn=fn: seen.append((fn, args)) or 0)
    for name, svc in _kpi_services().items():
        assert cli.main([str(part) for part in svc["command"]]) == 0, name
    commands = {fn for fn, _ in seen}
    assert commands == {"cmd_worker", "cmd_simulate", "cmd_asterisk", "cmd_csv"}
    feed = next(args for fn, args in seen if fn == "cmd_simulate")
    assert feed.bootstrap == "kafka:9092" and feed.output is None
    for fn in ("cmd_asterisk", "cmd_csv"):
        args = next(args for f, args in seen if f == fn)
        assert args.bootstrap == "kafka:9092" and args.output is None
    assert next(args for f, args in seen if f == "cmd_asterisk").follow
    services = _compose()["services"]
    assert services["ingest-asterisk"]["profiles"] == ["asterisk"] and services["ingest-csv"]["profiles"] == ["csv"]


def test_configuration_page_documents_every_setting():
    page = CONFIG_DOC.read_text()
    names = [f"KPI_{name.upper()}" for name in Settings.model_fields if name not in ("kafka", "defaults", "queues")]
    names += [f"KPI_KAFKA__{name.upper()}" for name in KafkaConfig.model_fields]
    names += [f"KPI_DEFAULTS__{name.upper()}" for name in QueueConfig.model_fields]
    missing = [n for n in names if f"`{n}`" not in page]
    assert not missing, f"docs/configuration.md's settings table lacks {missing}"


def test_queue_entries_inherit_the_defaults(tmp_path):
    path = tmp_path / "kpi.yaml"
    path.write_text("defaults:\n  threshold_seconds: 30\n  time_zone: Europe/Paris\n"
                    "queues:\n  vip:\n    threshold_seconds: 10\n")
    s = load_settings(path)
    assert s.queues["vip"].threshold_seconds == 10       # its own value
    assert s.queues["vip"].time_zone == "Europe/Paris"   # from defaults
    assert s.queues["vip"].short_abandon_seconds == 5    # built-in, as defaults does not say


def test_load_settings_path_does_not_leak_into_later_calls(tmp_path, monkeypatch):
    monkeypatch.delenv("KPI_CONFIG", raising=False)
    path = tmp_path / "kpi.yaml"
    path.write_text("defaults:\n  threshold_seconds: 30\n")
    assert load_settings(path).defaults.threshold_seconds == 30
    assert load_settings().defaults.threshold_seconds == 20


def test_staleness_limits_per_channel(tmp_path, monkeypatch):
    """Defaults (voice and chat 4 h, messaging and social 7 days, email, ticket and unknown 30 days), a YAML
    `null` or an environment `off` for never, per-queue entries merged channel by channel over `defaults`."""
    from processor.core.settings import DEFAULT_STALE_AFTER_MS

    e = load_settings().engine()
    assert dict(DEFAULT_STALE_AFTER_MS) == {"voice": 14_400_000, "chat": 14_400_000, "email": 2_592_000_000,
                                            "messaging": 604_800_000, "social": 604_800_000, "ticket": 2_592_000_000,
                                            "unknown": 2_592_000_000}
    assert e.default_queue.stale_after_ms == DEFAULT_STALE_AFTER_MS
    path = write(tmp_path, "defaults:\n  stale_after_seconds: {voice: 7200, ticket: null}\n"
                           "queues:\n  vip:\n    stale_after_seconds: {chat: 600}\n")
    e = load_settings(path).engine()
    assert (e.stale_after("vip", "chat"), e.stale_after("vip", "voice"), e.stale_after("vip", "ticket")) == \
        (600_000, 7_200_000, None)
    assert (e.stale_after("other", "voice"), e.stale_after("other", "chat"), e.stale_after("other", "ticket")) == \
        (7_200_000, 14_400_000, None)
    monkeypatch.setenv("KPI_DEFAULTS__STALE_AFTER_SECONDS__EMAIL", "off")
    monkeypatch.setenv("KPI_DEFAULTS__STALE_AFTER_SECONDS__VOICE", "3600")
    e = load_settings().engine()
    assert (e.stale_after("q", "email"), e.stale_after("q", "voice")) == (None, 3_600_000)
    monkeypatch.delenv("KPI_DEFAULTS__STALE_AFTER_SECONDS__EMAIL")
    monkeypatch.delenv("KPI_DEFAULTS__STALE_AFTER_SECONDS__VOICE")
    for bad, where in (("{voice: 30}", "defaults.stale_after_seconds.voice"),
                       ("{fax: 600}", "defaults.stale_after_seconds.fax")):
        with pytest.raises(ConfigError) as exc:
            load_settings(write(tmp_path, f"defaults:\n  stale_after_seconds: {bad}\n", "bad.yaml"))
        assert where in str(exc.value)


def test_unidentified_customer_ids_default_env_and_yaml(monkeypatch, tmp_path):
    """The placeholder ids that mean "not identified": a documented default, replaced per deployment
    (YAML or environment); compared trimmed and case-insensitively; empty is always one of them."""
    e = Settings().engine()
    assert e.unidentified_customers == frozenset({"", "0", "anonymous", "unknown"})
    assert all(e.unidentified(c) for c in (None, "", "  ", "0", "Anonymous", " UNKNOWN "))
    assert not any(e.unidentified(c) for c in ("00", "cust-0", "anonymous-7"))
    s = load_settings(write(tmp_path, "unidentified_customer_ids: ['guest', 'N/A']\n"))
    assert s.engine().unidentified("GUEST") and s.engine().unidentified("n/a") and s.engine().unidentified("")
    assert not s.engine().unidentified("0")  # the list replaces the default
    monkeypatch.setenv("KPI_UNIDENTIFIED_CUSTOMER_IDS", "[]")
    e = Settings().engine()
    assert e.unidentified_customers == frozenset({""}) and e.unidentified(None) and not e.unidentified("0")
    monkeypatch.setenv("KPI_UNIDENTIFIED_CUSTOMER_IDS", '["x' + "y" * 200 + '"]')
    with pytest.raises(Exception, match="200 characters"):
        Settings()
