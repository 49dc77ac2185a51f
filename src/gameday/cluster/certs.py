"""The PKI of a local control plane: one CA, serving and client certificates, the SA key pair.

Everything is ECDSA P-256 (fast to generate, accepted by every Kubernetes component) and
written as PEM files into the cluster's temp dir.  Client identities follow the upstream
names so the default RBAC bindings (system:kube-controller-manager, system:kube-scheduler,
system:masters) apply without any extra role.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# The first address of the service range is the in-cluster "kubernetes" service: the
# apiserver's serving cert names it so in-cluster clients could verify it.
SERVICE_CIDR = "10.0.0.0/24"
KUBERNETES_SERVICE_IP = "10.0.0.1"
VALIDITY = dt.timedelta(days=30)


@dataclass(frozen=True)
class KeyPair:
    cert: Path
    key: Path


@dataclass(frozen=True)
class ClusterPKI:
    """Paths of every PEM file a control plane needs."""

    ca: KeyPair
    apiserver: KeyPair
    admin: KeyPair
    controller_manager: KeyPair
    scheduler: KeyPair
    kubelet_client: KeyPair  # the apiserver's identity when it dials a kubelet (logs, exec)
    front_proxy_ca: KeyPair  # a separate CA for the aggregation layer's request-header auth
    front_proxy_client: KeyPair
    service_account_key: Path  # private: signs tokens (controller-manager, apiserver)
    service_account_pub: Path  # public: verifies tokens (apiserver)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    parts = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        parts.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(parts)


def _builder(subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))  # tolerate small clock skew
        .not_valid_after(now + VALIDITY)
    )


class _Issuer:
    def __init__(self, directory: Path, stem: str = "ca", common_name: str = "gameday-local-ca") -> None:
        self.directory = directory
        self.key = _new_key()
        self.name = _name(common_name)
        cert = (
            _builder(self.name, self.name, self.key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                    key_encipherment=False, data_encipherment=False, key_agreement=False,
                    encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .sign(self.key, hashes.SHA256())
        )
        self.pair = self._write(stem, cert, self.key)

    def _write(self, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> KeyPair:
        pair = KeyPair(self.directory / f"{stem}.crt", self.directory / f"{stem}.key")
        pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key, pair.key)
        return pair

    def issue(
        self,
        stem: str,
        common_name: str,
        *,
        organization: str | None = None,
        server_names: list[str] | None = None,
        client: bool = True,
    ) -> KeyPair:
        key = _new_key()
        usages = [ExtendedKeyUsageOID.CLIENT_AUTH] if client else []
        builder = _builder(_name(common_name, organization), self.name, key.public_key())
        if server_names:
            usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
            builder = builder.add_extension(x509.SubjectAlternativeName(_alt_names(server_names)), critical=False)
        cert = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False).sign(self.key, hashes.SHA256())
        return self._write(stem, cert, key)


def _alt_names(names: list[str]) -> list[x509.GeneralName]:
    result: list[x509.GeneralName] = []
    for name in names:
        try:
            result.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            result.append(x509.DNSName(name))
    return result


def generate(directory: Path) -> ClusterPKI:
    """Write a fresh PKI into ``directory`` (created if missing)."""
    directory.mkdir(parents=True, exist_ok=True)
    issuer = _Issuer(directory)
    # Separate from the client CA, as upstream requires: a cert from the client CA must not
    # be able to assert arbitrary users through request headers.
    front_proxy = _Issuer(directory, "front-proxy-ca", "gameday-front-proxy-ca")
    apiserver_names = [
        "127.0.0.1", "localhost", KUBERNETES_SERVICE_IP, "kubernetes", "kubernetes.default",
        "kubernetes.default.svc", "kubernetes.default.svc.cluster.local",
    ]
    sa_key = _new_key()
    sa_private, sa_public = directory / "sa.key", directory / "sa.pub"
    _write_key(sa_key, sa_private)
    sa_public.write_bytes(
        sa_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return ClusterPKI(
        ca=issuer.pair,
        apiserver=issuer.issue("apiserver", "kube-apiserver", server_names=apiserver_names, client=False),
        admin=issuer.issue("admin", "gameday-admin", organization="system:masters"),
        controller_manager=issuer.issue("controller-manager", "system:kube-controller-manager"),
        scheduler=issuer.issue("scheduler", "system:kube-scheduler"),
        kubelet_client=issuer.issue("apiserver-kubelet-client", "kube-apiserver-kubelet-client",
                                    organization="system:masters"),
        front_proxy_ca=front_proxy.pair,
        front_proxy_client=front_proxy.issue("front-proxy-client", "front-proxy-client"),
        service_account_key=sa_private,
        service_account_pub=sa_public,
    )
