"""Throwaway certificates for the TLS tests, made at test time (no key material in the repo).

``make_pki(directory)`` writes a CA, a server certificate for 127.0.0.1/localhost, a client
certificate, an expired server certificate, one for the wrong host name, a self-signed server
certificate and a client certificate from another CA, each as PEM files, and returns their paths.
"""

import datetime
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Cached per process: key generation is the slow part, and the files are rewritten per test dir.
_cache = {}


def _name(common_name):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key():
    return ec.generate_private_key(ec.SECP256R1())


def _cert(subject_key, common_name, issuer_key=None, issuer_name=None, ca=False, hosts=(),
          days=(-1, 30), client=False):
    now = datetime.datetime.now(datetime.timezone.utc)
    issuer_key = issuer_key or subject_key
    builder = (x509.CertificateBuilder()
               .subject_name(_name(common_name))
               .issuer_name(issuer_name or _name(common_name))
               .public_key(subject_key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now + datetime.timedelta(days=days[0]))
               .not_valid_after(now + datetime.timedelta(days=days[1])))
    builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False,
            encipher_only=False, decipher_only=False), critical=True)
    else:
        builder = builder.add_extension(x509.ExtendedKeyUsage(
            [ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH]),
            critical=False)
    names = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem_key(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _pem_cert(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def _build():
    ca_key = _key()
    ca = _cert(ca_key, "s2proxy test CA", ca=True, days=(-1, 365))
    other_ca_key = _key()
    other_ca = _cert(other_ca_key, "another test CA", ca=True, days=(-1, 365))
    local = ("127.0.0.1", "localhost")
    made = {"ca": (None, ca), "other_ca": (None, other_ca)}

    def issued(name, cn, hosts=(), days=(-1, 30), client=False, by=(ca_key, ca)):
        key = _key()
        made[name] = (key, _cert(key, cn, by[0], by[1].subject, hosts=hosts, days=days,
                                 client=client))

    issued("server", "s2proxy test server", local)
    issued("expired", "expired test server", local, days=(-30, -1))
    issued("wrong_host", "wrong host test server", ("wrong.example",))
    issued("client", "test device", client=True)
    issued("other_client", "device of another CA", client=True, by=(other_ca_key, other_ca))
    self_key = _key()
    made["self_signed"] = (self_key, _cert(self_key, "self-signed test server", hosts=local))
    return made


class PKI:
    """Paths of the PEM files: ``<name>_cert``, ``<name>_key`` and ``<name>_pem`` (both)."""

    def __init__(self, directory, made):
        self.directory = directory
        self.fingerprints = {}
        for name, (key, cert) in made.items():
            cert_path = os.path.join(directory, name + ".crt")
            with open(cert_path, "wb") as f:
                f.write(_pem_cert(cert))
            setattr(self, name + "_cert", cert_path)
            self.fingerprints[name] = cert.fingerprint(hashes.SHA256()).hex()
            if key is None:
                continue
            key_path = os.path.join(directory, name + ".key")
            with open(key_path, "wb") as f:
                f.write(_pem_key(key))
            os.chmod(key_path, 0o600)
            setattr(self, name + "_key", key_path)
            both = os.path.join(directory, name + ".pem")
            with open(both, "wb") as f:
                f.write(_pem_key(key) + _pem_cert(cert))
            setattr(self, name + "_pem", both)


def make_pki(directory):
    """Write the throwaway PKI into ``directory`` (created if needed) and return a :class:`PKI`."""
    if "made" not in _cache:
        _cache["made"] = _build()
    os.makedirs(directory, exist_ok=True)
    return PKI(directory, _cache["made"])


def escape_endpoint(path):
    """Escape a file path for a Twisted endpoint string."""
    return path.replace("\\", "\\\\").replace(":", "\\:").replace("=", "\\=")
