"""Kafka security settings → what every client gets (Faust/aiokafka and kafka-python), and the
mistakes refused before anything connects. The real handshakes are in tests/integration/test_sasl.py."""

from __future__ import annotations

import argparse
import ssl
from pathlib import Path
from typing import Any

import faust
import pytest
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from localkafka.broker import _make_certificates, _security_properties, _server_properties
from models.errors import ConfigurationError
from streams.kafka_security import KafkaSecurity
from streams.settings import Settings
from tools.cli import main
from tools.options import add_setting_options

SECRET = "s3cret-Pa55word"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(f"USAGE_DETECTOR_{name.upper()}", raising=False)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(CA file, a PEM holding a private key and its certificate), made by the local broker's helper.

    Needs openssl, as the local broker's TLS listener does; scripts/setup checks it is there."""
    return _make_certificates(tmp_path_factory.mktemp("tls"))


def security(**settings: Any) -> KafkaSecurity:
    return KafkaSecurity.from_settings(Settings(**settings))


def test_by_default_every_client_speaks_plaintext() -> None:
    plain = security()
    assert plain.faust_credentials() is None
    assert plain.kafka_python_config() == {"security_protocol": "PLAINTEXT"}
    assert plain.ssl_context() is None
    assert plain.describe() == "PLAINTEXT"


def test_scram_over_sasl_plaintext(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USAGE_DETECTOR_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("USAGE_DETECTOR_KAFKA_SASL_USERNAME", "alice")
    monkeypatch.setenv("USAGE_DETECTOR_KAFKA_SASL_PASSWORD", SECRET)
    sasl = KafkaSecurity.from_settings(Settings())
    credentials = sasl.faust_credentials()
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials_to_aiokafka_auth(credentials) == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",  # the default mechanism
        "sasl_plain_username": "alice",
        "sasl_plain_password": SECRET,
        "ssl_context": None,
    }
    assert sasl.kafka_python_config() == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "alice",
        "sasl_plain_password": SECRET,
    }
    assert sasl.describe() == "SASL_PLAINTEXT, SCRAM-SHA-512 as 'alice'"


def test_the_password_never_shows_in_a_repr_or_the_description(tmp_path: Path) -> None:
    settings = Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_username="alice", kafka_sasl_password=SECRET)
    sasl = KafkaSecurity.from_settings(settings)
    shown = [repr(settings), repr(sasl), str(sasl), sasl.describe(), repr(sasl.faust_credentials()), repr(sasl.kafka_python_config())]
    shown.append("%s" % sasl.kafka_python_config())  # noqa: UP031 -- %-formatting is how kafka-python logs its configuration at DEBUG
    assert not [text for text in shown if SECRET in text]


def test_plain_with_the_password_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text(SECRET + "\n")
    sasl = security(
        kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_mechanism="PLAIN", kafka_sasl_username="bob", kafka_sasl_password_file=secret
    )
    config = sasl.kafka_python_config()
    assert (config["sasl_mechanism"], config["sasl_plain_password"]) == ("PLAIN", SECRET)  # trailing newline dropped
    assert credentials_to_aiokafka_auth(sasl.faust_credentials())["sasl_plain_password"] == SECRET


def test_sasl_ssl_verifies_the_broker_with_the_given_ca(certificates: tuple[Path, Path]) -> None:
    ca_file, _ = certificates
    sasl = security(kafka_security_protocol="SASL_SSL", kafka_sasl_username="alice", kafka_sasl_password=SECRET, kafka_ssl_cafile=ca_file)
    auth = credentials_to_aiokafka_auth(sasl.faust_credentials())
    assert auth["security_protocol"] == "SASL_SSL"
    context = auth["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "usage-detector local CA"),),)]
    config = sasl.kafka_python_config()
    assert config["security_protocol"] == "SASL_SSL" and config["ssl_check_hostname"] is True
    assert config["ssl_context"].get_ca_certs() == context.get_ca_certs()
    assert sasl.describe() == f"SASL_SSL, SCRAM-SHA-512 as 'alice', CA {ca_file}"


def test_ssl_with_a_client_certificate_and_no_hostname_check(certificates: tuple[Path, Path]) -> None:
    ca_file, key_and_certificate = certificates
    tls = security(
        kafka_security_protocol="SSL",
        kafka_ssl_cafile=ca_file,
        kafka_ssl_certfile=key_and_certificate,
        kafka_ssl_check_hostname=False,
    )
    credentials = tls.faust_credentials()
    assert isinstance(credentials, faust.SSLCredentials)
    auth = credentials_to_aiokafka_auth(credentials)
    assert auth["security_protocol"] == "SSL"
    assert auth["ssl_context"].check_hostname is False and auth["ssl_context"].verify_mode == ssl.CERT_REQUIRED
    config = tls.kafka_python_config()
    assert "sasl_mechanism" not in config and config["ssl_check_hostname"] is False


def test_ssl_without_a_ca_file_trusts_the_systems_cas() -> None:
    context = security(kafka_security_protocol="SSL").ssl_context()
    assert context is not None and context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_password": SECRET}, "needs USAGE_DETECTOR_KAFKA_SASL_USERNAME"),
        ({"kafka_security_protocol": "SASL_SSL", "kafka_sasl_username": "a"}, "exactly one of"),
        (
            {"kafka_security_protocol": "SASL_SSL", "kafka_sasl_username": "a", "kafka_sasl_password": SECRET, "kafka_sasl_password_file": "/p"},
            "exactly one of",
        ),
        ({"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_username": "a", "kafka_sasl_password": ""}, "is empty"),
        ({"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_username": "a", "kafka_sasl_password_file": "/nonexistent/pw"}, "cannot read"),
        ({"kafka_sasl_username": "alice", "kafka_sasl_password": SECRET}, "set it to SASL_PLAINTEXT or SASL_SSL"),
        ({"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_username": "a", "kafka_sasl_password": SECRET, "kafka_ssl_cafile": "/ca.pem"}, "does not use TLS"),
        ({"kafka_security_protocol": "SSL", "kafka_ssl_cafile": "/nonexistent/ca.pem"}, "SSL_CAFILE: no such file"),
    ],
)
def test_combinations_that_cannot_work_are_refused_naming_the_setting(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as caught:
        security(**settings)
    assert SECRET not in str(caught.value)


def test_a_ca_file_that_is_not_a_certificate_is_refused(tmp_path: Path) -> None:
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate")
    with pytest.raises(ConfigurationError, match="cannot load the Kafka TLS files"):
        security(kafka_security_protocol="SSL", kafka_ssl_cafile=bogus)


def test_passwords_are_no_command_line_options() -> None:
    parser = argparse.ArgumentParser()
    add_setting_options(parser)
    options = {option for action in parser._actions for option in action.option_strings}
    assert "--kafka-security-protocol" in options and "--kafka-sasl-password-file" in options
    assert "--kafka-sasl-password" not in options and "--kafka-ssl-key-password" not in options


def test_the_worker_refuses_a_bad_combination_with_exit_code_2(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")  # never reached
    monkeypatch.setenv("USAGE_DETECTOR_KAFKA_SASL_PASSWORD", SECRET)
    assert main(["worker", "--kafka-security-protocol", "SASL_SSL"]) == 2
    err = capsys.readouterr().err
    assert "USAGE_DETECTOR_KAFKA_SASL_USERNAME" in err and SECRET not in err
    assert main(["worker", "--kafka-security-protocol", "TLS"]) == 2
    assert "kafka_security_protocol" in capsys.readouterr().err


def test_the_local_brokers_sasl_listener_configuration() -> None:
    properties = _server_properties(Path("/h"), 9092, 9093, {"SASL_PLAINTEXT": 9094}) + _security_properties(
        ["SASL_PLAINTEXT"], {"alice": "pw-a", "bob": "pw-b"}, None
    )
    lines = dict(line.split("=", 1) for line in properties.splitlines() if "=" in line and not line.startswith("#"))
    assert lines["listeners"] == "PLAINTEXT://127.0.0.1:9092,SASL_PLAINTEXT://127.0.0.1:9094,CONTROLLER://127.0.0.1:9093"
    assert lines["advertised.listeners"] == "PLAINTEXT://127.0.0.1:9092,SASL_PLAINTEXT://127.0.0.1:9094"
    assert lines["listener.security.protocol.map"].endswith(",SASL_PLAINTEXT:SASL_PLAINTEXT")
    assert lines["listener.name.sasl_plaintext.sasl.enabled.mechanisms"] == "PLAIN,SCRAM-SHA-512"
    assert lines["listener.name.sasl_plaintext.plain.sasl.jaas.config"] == (
        'org.apache.kafka.common.security.plain.PlainLoginModule required user_alice="pw-a" user_bob="pw-b";'
    )
    assert lines["listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config"].startswith(
        "org.apache.kafka.common.security.scram.ScramLoginModule required"
    )
    assert "ssl.keystore.location" not in lines


def test_no_broker_listening_is_a_connection_error_naming_what_to_check() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # free, and nobody listens once closed
    with pytest.raises(ConnectionError, match=r"unreachable over PLAINTEXT.*KAFKA_BOOTSTRAP_SERVERS"):
        security().check_access(f"127.0.0.1:{port}", timeout_s=2)
