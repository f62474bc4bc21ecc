"""A secured local broker: TLS with a throw-away CA, SASL/SCRAM-SHA-512 and the KRaft
StandardAuthorizer with no access unless an ACL grants it.

The clients' listener is SASL_SSL: TLS (a certificate for 127.0.0.1 signed by a CA made here)
carrying SCRAM-SHA-512 logins. The admin's credentials are put in the metadata when the
storage is formatted (`kafka-storage format --add-scram`), so the broker needs no running
cluster to create them. The controller listener is TLS with client certificates (mutual TLS):
only a holder of the broker's key reaches it, as the super user `User:CN=kgen-broker`. The
broker talks to itself (inter-broker) over SASL_SSL as the admin. Everything on loopback.
"""

import datetime
import ipaddress
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

ADMIN = "admin"
MECHANISM = "SCRAM-SHA-512"
BROKER_CN = "kgen-broker"
AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
_VALID_DAYS = 365


@dataclass(frozen=True)
class Security:
    """The files of a secured broker under `directory` (`security/` of its data dir)."""

    directory: Path

    @property
    def ca_file(self) -> Path:
        """The CA certificate clients trust (`ssl.ca.location`)."""
        return self.directory / "ca.pem"

    @property
    def keystore_file(self) -> Path:
        """The broker's private key and certificate chain, PEM."""
        return self.directory / "broker.pem"

    @property
    def password_file(self) -> Path:
        """The admin's password (mode 0600)."""
        return self.directory / "admin.password"

    @property
    def admin_password(self) -> str:
        """The admin's SCRAM password."""
        return self.password_file.read_text(encoding="utf-8").strip()

    def ensure(self) -> None:
        """Make the CA, the broker's certificate and the admin's password, once."""
        if self.ca_file.is_file() and self.keystore_file.is_file() and self.password_file.is_file():
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        ca_pem, keystore_pem = _make_certificates()
        _write_private(self.keystore_file, keystore_pem)
        self.ca_file.write_bytes(ca_pem)
        _write_private(self.password_file, (secrets.token_urlsafe(24) + "\n").encode("ascii"))

    def format_options(self) -> tuple[str, ...]:
        """`kafka-storage format` options that create the admin's SCRAM credentials."""
        return ("--add-scram", f"{MECHANISM}=[name={ADMIN},password={self.admin_password}]")

    def server_settings(self) -> dict[str, str]:
        """TLS, SASL and authorizer settings of server.properties (listeners are set apart)."""
        jaas = (
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{ADMIN}" password="{self.admin_password}";'
        )
        return {
            "sasl.enabled.mechanisms": MECHANISM,
            "sasl.mechanism.inter.broker.protocol": MECHANISM,
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": jaas,
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(self.keystore_file),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(self.ca_file),
            # Only the broker's own certificate opens the controller listener.
            "listener.name.controller.ssl.client.auth": "required",
            "authorizer.class.name": AUTHORIZER,
            "allow.everyone.if.no.acl.found": "false",
            "super.users": f"User:{ADMIN};User:CN={BROKER_CN}",
        }

    def client_config(self, username: str = ADMIN, password: str | None = None) -> dict[str, str]:
        """librdkafka settings of a client logging in as `username` (the admin by default)."""
        return {
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": MECHANISM,
            "sasl.username": username,
            "sasl.password": self.admin_password if password is None else password,
            "ssl.ca.location": str(self.ca_file),
        }


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def _make_certificates() -> tuple[bytes, bytes]:
    """A CA (its key is thrown away) and a broker certificate for 127.0.0.1 and localhost
    that it signs; returns the CA certificate and the broker's key + chain, both PEM.

    `cryptography` is imported here: only a secured broker needs it (a dev dependency)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kgen local CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=_VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, BROKER_CN)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=_VALID_DAYS))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [x509.oid.ExtendedKeyUsageOID.SERVER_AUTH, x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    keystore = (
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        + cert.public_bytes(pem)
        + ca_cert.public_bytes(pem)
    )
    return ca_cert.public_bytes(pem), keystore
