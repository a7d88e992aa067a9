"""How the worker's Kafka clients authenticate and encrypt: one translation from settings.

    USAGE_DETECTOR_KAFKA_SECURITY_PROTOCOL   PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL
    USAGE_DETECTOR_KAFKA_SASL_MECHANISM      SCRAM-SHA-512 | SCRAM-SHA-256 | PLAIN
    USAGE_DETECTOR_KAFKA_SASL_USERNAME       with _SASL_PASSWORD or _SASL_PASSWORD_FILE
    USAGE_DETECTOR_KAFKA_SSL_CAFILE          CA bundle (PEM) to verify the brokers; unset: the system's
    USAGE_DETECTOR_KAFKA_SSL_CERTFILE/_KEYFILE/_KEY_PASSWORD   client certificate (mutual TLS)
    USAGE_DETECTOR_KAFKA_SSL_CHECK_HOSTNAME  verify the broker's name against its certificate (true)

`KafkaSecurity.from_settings` checks the combination and reads the password file once; the
same object then gives Faust's credentials (aiokafka: consumer, producer, topic creation) and
the kafka-python keyword arguments (the admin client that creates topics), with one TLS
context for both. Secrets stay out of reprs and logs; `describe()` is what may be logged.
"""

from __future__ import annotations

import asyncio
import ssl
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from models.errors import ConfigurationError
from streams.settings import Settings

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
ENV = "USAGE_DETECTOR_KAFKA_"


class _Redacted(str):
    """A secret as the plain `str` the Kafka clients need, but whose repr hides it: a client
    that logs its configuration dict (kafka-python does, at DEBUG) shows stars."""

    def __repr__(self) -> str:
        return "'**********'"


@dataclass(frozen=True)
class KafkaSecurity:
    protocol: str = "PLAINTEXT"
    mechanism: str | None = None
    username: str | None = None
    password: SecretStr | None = field(default=None, repr=False)
    cafile: Path | None = None
    certfile: Path | None = None
    keyfile: Path | None = None
    key_password: SecretStr | None = field(default=None, repr=False)
    check_hostname: bool = True

    @property
    def uses_sasl(self) -> bool:
        return self.protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    @property
    def uses_tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @classmethod
    def from_settings(cls, settings: Settings) -> KafkaSecurity:
        """The checked security configuration; ConfigurationError names the setting to fix."""
        protocol = settings.kafka_security_protocol
        sasl, tls = protocol in ("SASL_PLAINTEXT", "SASL_SSL"), protocol in ("SSL", "SASL_SSL")
        password = settings.kafka_sasl_password
        if sasl:
            if not settings.kafka_sasl_username:
                raise ConfigurationError(f"{ENV}SECURITY_PROTOCOL={protocol} needs {ENV}SASL_USERNAME")
            if (password is None) == (settings.kafka_sasl_password_file is None):
                raise ConfigurationError(
                    f"{ENV}SECURITY_PROTOCOL={protocol} needs exactly one of {ENV}SASL_PASSWORD and {ENV}SASL_PASSWORD_FILE"
                )
            if settings.kafka_sasl_password_file is not None:
                password = SecretStr(_read_secret(settings.kafka_sasl_password_file, f"{ENV}SASL_PASSWORD_FILE"))
            if not password or not password.get_secret_value():
                raise ConfigurationError(f"the SASL password ({ENV}SASL_PASSWORD or _FILE) is empty")
        elif settings.kafka_sasl_username or password is not None or settings.kafka_sasl_password_file is not None:
            raise ConfigurationError(
                f"SASL credentials are set but {ENV}SECURITY_PROTOCOL={protocol} does not use them: "
                "set it to SASL_PLAINTEXT or SASL_SSL"
            )
        tls_files = {
            "SSL_CAFILE": settings.kafka_ssl_cafile,
            "SSL_CERTFILE": settings.kafka_ssl_certfile,
            "SSL_KEYFILE": settings.kafka_ssl_keyfile,
        }
        if not tls and any(path is not None for path in tls_files.values()):
            raise ConfigurationError(
                f"TLS files are set but {ENV}SECURITY_PROTOCOL={protocol} does not use TLS: set it to SSL or SASL_SSL"
            )
        for name, path in tls_files.items():
            if path is not None and not path.is_file():
                raise ConfigurationError(f"{ENV}{name}: no such file: {path}")
        if settings.kafka_ssl_keyfile is not None and settings.kafka_ssl_certfile is None:
            raise ConfigurationError(f"{ENV}SSL_KEYFILE needs {ENV}SSL_CERTFILE (the client certificate)")
        security = cls(
            protocol=protocol,
            mechanism=settings.kafka_sasl_mechanism if sasl else None,
            username=settings.kafka_sasl_username if sasl else None,
            password=password if sasl else None,
            cafile=settings.kafka_ssl_cafile,
            certfile=settings.kafka_ssl_certfile,
            keyfile=settings.kafka_ssl_keyfile,
            key_password=settings.kafka_ssl_key_password,
            check_hostname=settings.kafka_ssl_check_hostname,
        )
        security.ssl_context()  # unreadable certificates fail here, before any client starts
        return security

    def describe(self) -> str:
        """What may be logged: protocol, mechanism, user, CA; never a secret."""
        parts = [self.protocol]
        if self.uses_sasl:
            parts.append(f"{self.mechanism} as {self.username!r}")
        if self.uses_tls:
            parts.append(f"CA {self.cafile or 'system default'}")
            if self.certfile:
                parts.append(f"client certificate {self.certfile}")
        return ", ".join(parts)

    def ssl_context(self) -> ssl.SSLContext | None:
        """A fresh TLS context verifying the brokers (None without TLS)."""
        if not self.uses_tls:
            return None
        try:
            context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(self.cafile) if self.cafile else None)
            context.check_hostname = self.check_hostname
            if self.certfile is not None:
                context.load_cert_chain(
                    str(self.certfile),
                    str(self.keyfile) if self.keyfile else None,
                    password=self.key_password.get_secret_value() if self.key_password else None,
                )
        except (OSError, ssl.SSLError) as exc:
            raise ConfigurationError(f"cannot load the Kafka TLS files ({ENV}SSL_*): {exc}") from None
        return context

    def faust_credentials(self) -> Any:
        """`broker_credentials` for faust.App (None: plaintext)."""
        import faust

        if self.protocol == "PLAINTEXT":
            return None
        if self.protocol == "SSL":
            return faust.SSLCredentials(self.ssl_context())
        assert self.password is not None
        return faust.SASLCredentials(
            username=self.username,
            password=_Redacted(self.password.get_secret_value()),
            mechanism=self.mechanism,
            ssl_context=self.ssl_context(),  # None for SASL_PLAINTEXT; a context makes it SASL_SSL
        )

    def kafka_python_config(self) -> dict[str, Any]:
        """Keyword arguments for kafka-python clients (KafkaAdminClient, KafkaProducer, ...)."""
        config: dict[str, Any] = {"security_protocol": self.protocol}
        if self.uses_sasl:
            assert self.password is not None
            config.update(
                sasl_mechanism=self.mechanism,
                sasl_plain_username=self.username,
                sasl_plain_password=_Redacted(self.password.get_secret_value()),
            )
        if self.uses_tls:
            config.update(ssl_context=self.ssl_context(), ssl_check_hostname=self.check_hostname)
        return config

    def aiokafka_config(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka connections, as Faust derives them from its credentials."""
        config: dict[str, Any] = {"security_protocol": self.protocol, "ssl_context": self.ssl_context()}
        if self.uses_sasl:
            assert self.password is not None
            config.update(
                sasl_mechanism=self.mechanism,
                sasl_plain_username=self.username,
                sasl_plain_password=_Redacted(self.password.get_secret_value()),
            )
        return config

    def check_access(self, bootstrap_servers: str, timeout_s: float = 10.0) -> None:
        """Connect and authenticate to a bootstrap server as the worker's clients will.

        ConfigurationError when a broker refuses the credentials, the mechanism or the TLS
        handshake (retrying cannot help); ConnectionError when no server answers.
        """
        def check() -> None:
            loop = asyncio.new_event_loop()  # never set as current: Faust's loop comes later
            try:
                loop.run_until_complete(self._check_access(bootstrap_servers, timeout_s))
            finally:
                loop.close()

        try:
            asyncio.get_running_loop()
        except RuntimeError:
            check()
            return
        with ThreadPoolExecutor(1) as pool:  # called from a coroutine: that loop cannot run another
            pool.submit(check).result()

    async def _check_access(self, bootstrap_servers: str, timeout_s: float) -> None:
        from aiokafka import errors
        from aiokafka.conn import create_conn
        from aiokafka.protocol.metadata import MetadataRequest

        failures = []
        for server in (s.strip() for s in bootstrap_servers.split(",") if s.strip()):
            host, _, port = server.rpartition(":")
            try:
                conn = await create_conn(
                    host.strip("[]"), int(port), client_id="usage-detector-check", request_timeout_ms=int(timeout_s * 1000), **self.aiokafka_config()
                )
            except (errors.SaslAuthenticationFailed, errors.AuthenticationFailedError) as exc:
                raise ConfigurationError(
                    f"Kafka at {server} rejected the SASL credentials of user {self.username!r} ({self.mechanism}): {_message(exc)}; "
                    f"check {ENV}SASL_USERNAME, {ENV}SASL_PASSWORD(_FILE) and {ENV}SASL_MECHANISM"
                ) from None
            except (errors.UnsupportedSaslMechanismError, errors.IllegalSaslStateError, errors.AuthenticationMethodNotSupported) as exc:
                raise ConfigurationError(
                    f"Kafka at {server} does not accept SASL {self.mechanism} there: {_message(exc)}; "
                    f"check {ENV}SECURITY_PROTOCOL and {ENV}SASL_MECHANISM"
                ) from None
            except (ssl.SSLEOFError, ssl.SSLZeroReturnError) as exc:  # closed mid-handshake: may pass
                failures.append(f"{server}: {_message(exc)}")
                continue
            except ssl.SSLError as exc:  # a certificate not trusted, or no TLS on the other side
                raise ConfigurationError(
                    f"TLS handshake with Kafka at {server} failed: {exc}; "
                    f"check {ENV}SECURITY_PROTOCOL, {ENV}SSL_CAFILE and {ENV}SSL_CHECK_HOSTNAME"
                ) from None
            except (TimeoutError, OSError, errors.KafkaError, ValueError) as exc:
                failures.append(f"{server}: {_message(exc)}")
                continue
            try:  # a listener that wants SASL from a client that did not authenticate drops it here
                await conn.send(MetadataRequest([]))
            except (TimeoutError, OSError, errors.KafkaError) as exc:
                failures.append(f"{server}: connected, but the first request failed ({_message(exc)}): does the listener want SASL?")
                continue
            finally:
                conn.close()
            return
        raise ConnectionError(
            f"Kafka at {bootstrap_servers} is unreachable over {self.protocol} ({'; '.join(failures)}); "
            f"check KAFKA_BOOTSTRAP_SERVERS and {ENV}SECURITY_PROTOCOL"
        )


def _message(exc: BaseException) -> str:
    text, name = str(exc), type(exc).__name__
    return text if name in text else f"{name}: {text}" if text else name


def _read_secret(path: Path, setting: str) -> str:
    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"{setting}: cannot read {path}: {exc}") from None
