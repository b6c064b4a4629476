"""TLS for both directions: the inbound ``ssl:`` listener and the outbound ``wss://`` connectors.

S2 must not travel unencrypted and its communication layer asks for TLS 1.3, so the inbound
listener gets a TLS 1.3 floor (``--tls-min-version 1.2`` lowers it for old devices, with a
warning) and may demand client certificates signed by a CA (mutual TLS). Outbound connections
verify the peer's chain and host name through service_identity (``optionsForClientTLS``), or
compare the peer's certificate with a SHA-256 pin (S2 allows self-signed certificates on a LAN
only when pinned), or, with an explicit insecure flag, skip verification.
"""

import hashlib
import re

from cryptography.hazmat.primitives.serialization import Encoding
from OpenSSL import SSL
from twisted.internet import endpoints, ssl
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.python.failure import Failure
from zope.interface import implementer

from s2proxy import logs

_log = logs.make_logger("s2proxy.tls")

MIN_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
DEFAULT_MIN_VERSION = "1.3"

_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)

# OpenSSL verification errors about the certificate's dates: a pin does not excuse them.
_X509_V_ERR_CERT_NOT_YET_VALID = 9
_X509_V_ERR_CERT_HAS_EXPIRED = 10


class TLSConfigError(ValueError):
    """A TLS setting cannot be used; the text names the setting and the file."""


class PinMismatch(Exception):
    """The peer's certificate is not the pinned one."""


def require_service_identity():
    """Fail unless service_identity can check host names (Twisted would otherwise be weaker)."""
    try:
        import service_identity  # noqa: F401
        from service_identity import pyopenssl  # noqa: F401
    except ImportError as e:
        raise TLSConfigError(
            "service_identity is not importable (%s): without it the host names of wss:// peers "
            "cannot be verified; install it (pip install service-identity)" % e)


def parse_min_version(text, flag="--tls-min-version"):
    try:
        return MIN_VERSIONS[str(text).strip()]
    except KeyError:
        raise TLSConfigError("%s: %r is not a TLS version (use 1.3 or 1.2)" % (flag, text))


def _read(path, what):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise TLSConfigError("%s %s: %s" % (what, path, e.strerror or e))


def read_certificates(path, what="CA file"):
    """Every certificate in a PEM file, as twisted.internet.ssl.Certificate objects."""
    blocks = _PEM_CERT.findall(_read(path, what))
    if not blocks:
        raise TLSConfigError("%s %s: no PEM certificate in it" % (what, path))
    try:
        return [ssl.Certificate.loadPEM(block) for block in blocks]
    except Exception as e:
        raise TLSConfigError("%s %s: not a valid certificate (%s)" % (what, path, e))


def read_private_certificate(cert_path, key_path=None, what="certificate"):
    """A certificate and its key (in one PEM file, or the key in ``key_path``)."""
    cert_pem = _read(cert_path, what)
    key_pem = _read(key_path, what + " key") if key_path else cert_pem
    blocks = _PEM_CERT.findall(cert_pem)
    if not blocks:
        raise TLSConfigError("%s %s: no PEM certificate in it" % (what, cert_path))
    try:
        return ssl.PrivateCertificate.loadPEM(blocks[0] + b"\n" + key_pem), blocks[1:]
    except Exception as e:
        raise TLSConfigError("%s %s: certificate and private key do not load together (%s)"
                             % (what, key_path or cert_path, e))


def normalise_fingerprint(text):
    """``AB:CD:...`` or plain hex, any case, optionally prefixed ``sha256:`` -> 64 lowercase hex."""
    value = str(text).strip().lower()
    if value.startswith("sha256:"):
        value = value[len("sha256:"):]
    value = value.replace(":", "").replace(" ", "")
    if not re.match(r"[0-9a-f]{64}\Z", value):
        raise TLSConfigError("fingerprint %r is not a SHA-256 fingerprint (64 hex digits, "
                             "colons allowed)" % (text,))
    return value


def certificate_fingerprint(certificate):
    """SHA-256 fingerprint (lowercase hex) of a pyOpenSSL X509 or cryptography certificate."""
    if hasattr(certificate, "to_cryptography"):
        certificate = certificate.to_cryptography()
    return hashlib.sha256(certificate.public_bytes(Encoding.DER)).hexdigest()


# -- inbound ------------------------------------------------------------------------------------

def _split_endpoint(description):
    """Split a Twisted endpoint string into positional and keyword parts (``\\`` escapes)."""
    args, kwargs = [], {}
    current, key, chars = [], None, iter(description + ":")
    for ch in chars:
        if ch == "\\":
            current.append(next(chars, ""))
        elif ch == "=" and key is None:
            key, current = "".join(current), []
        elif ch == ":":
            if key is None:
                args.append("".join(current))
            else:
                kwargs[key] = "".join(current)
            current, key = [], None
        else:
            current.append(ch)
    return args, kwargs


_SSL_KEYS = ("privateKey", "certKey", "extraCertChain", "interface", "backlog", "dhParameters")


def server_endpoint(reactor, description, min_version=DEFAULT_MIN_VERSION, client_ca=None):
    """The listening endpoint for ``--port``.

    An ``ssl:`` description (Twisted's syntax: ``ssl:PORT:privateKey=K:certKey=C[:extraCertChain=
    CHAIN][:interface=I]``) gets the TLS floor and, with ``client_ca``, required client
    certificates signed by that CA. Any other description is handed to Twisted unchanged.
    """
    if not description.startswith("ssl:"):
        if client_ca:
            raise TLSConfigError("--tls-client-ca needs TLS on the listener: give --port as "
                                 "ssl:PORT:privateKey=KEY:certKey=CERT")
        return endpoints.serverFromString(reactor, description)
    args, kwargs = _split_endpoint(description[len("ssl:"):])
    if "sslmethod" in kwargs:
        raise TLSConfigError("--port: sslmethod is not supported; the TLS floor is "
                             "--tls-min-version")
    unknown = sorted(set(kwargs) - set(_SSL_KEYS))
    if unknown or len(args) != 1 or "port" in kwargs:
        raise TLSConfigError("--port %s: expected ssl:PORT:privateKey=KEY:certKey=CERT"
                             "[:extraCertChain=CHAIN][:interface=ADDR][:backlog=N]%s"
                             % (description, " (unknown: %s)" % ", ".join(unknown) if unknown else ""))
    try:
        port = int(args[0])
        backlog = int(kwargs.get("backlog", 50))
    except ValueError:
        raise TLSConfigError("--port %s: the port and backlog must be numbers" % description)
    if "privateKey" not in kwargs:
        raise TLSConfigError("--port %s: privateKey=FILE is required for ssl:" % description)
    key_path = kwargs["privateKey"]
    cert_path = kwargs.get("certKey", key_path)
    server_cert, chain_blocks = read_private_certificate(cert_path, key_path,
                                                         what="--port certificate")
    chain = [ssl.Certificate.loadPEM(b) for b in chain_blocks]
    if "extraCertChain" in kwargs:
        chain += read_certificates(kwargs["extraCertChain"], "--port extraCertChain")
    options = dict(
        privateKey=server_cert.privateKey.original,
        certificate=server_cert.original,
        extraCertChain=[c.original for c in chain],
        raiseMinimumTo=parse_min_version(min_version),
    )
    if "dhParameters" in kwargs:
        from twisted.python.filepath import FilePath
        options["dhParameters"] = ssl.DiffieHellmanParameters.fromFile(
            FilePath(kwargs["dhParameters"]))
    if client_ca:
        options.update(verify=True, requireCertificate=True,
                       caCerts=[c.original for c in read_certificates(client_ca, "--tls-client-ca")])
    context_factory = ssl.CertificateOptions(**options)
    if min_version != DEFAULT_MIN_VERSION:
        _log.warn("the TLS listener accepts TLS {version}: S2 asks for TLS 1.3 "
                  "(--tls-min-version lowers the floor only for old devices)", version=min_version)
    return endpoints.SSL4ServerEndpoint(reactor, port, context_factory, backlog=backlog,
                                        interface=kwargs.get("interface", ""))


# -- outbound -----------------------------------------------------------------------------------

@implementer(IOpenSSLClientConnectionCreator)
class _OwnCheckClientTLS:
    """A client connection creator whose certificate check is ``check`` (pin) or nothing.

    Used where service_identity's chain-and-name check does not apply: a pinned self-signed
    peer, or an explicitly insecure connector.
    """

    def __init__(self, hostname, options, pin=None):
        self._options = options
        self._pin = pin
        self._hostname = hostname
        self._sni = None
        if not (isIPAddress(hostname) or isIPv6Address(hostname)):
            self._sni = hostname.encode("idna")

    def clientConnectionForTLS(self, tls_protocol):
        connection = SSL.Connection(self._options.getContext(), None)
        connection.set_app_data(tls_protocol)
        if self._sni:
            connection.set_tlsext_host_name(self._sni)
        if self._pin is not None:
            connection.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT,
                                  _pin_callback(tls_protocol, self._pin, self._hostname))
        return connection


def _pin_callback(tls_protocol, pin, hostname):
    state = {"protocol": tls_protocol}

    def verify(connection, certificate, errno, depth, ok):
        # A pin stands in for the chain and the host name, not for the validity dates.
        # Exceptions inside OpenSSL callbacks get lost: catch everything.
        try:
            if errno in (_X509_V_ERR_CERT_NOT_YET_VALID, _X509_V_ERR_CERT_HAS_EXPIRED):
                return False
            if depth != 0:
                return True
            found = certificate_fingerprint(certificate)
            if found == pin:
                return True
            protocol = state.pop("protocol", None)
            if protocol is not None:
                protocol.failVerification(Failure(PinMismatch(
                    "the certificate of %s has SHA-256 fingerprint %s, not the pinned %s"
                    % (hostname, found, pin))))
            return False
        except BaseException:
            _log.failure("while checking a pinned certificate")
            return False
    return verify


def client_tls(hostname, ca_file=None, fingerprint=None, client_cert=None, client_key=None,
               insecure=False, min_version=DEFAULT_MIN_VERSION):
    """The connection creator for one ``wss://`` connector.

    ``fingerprint``: accept exactly the certificate with this SHA-256 fingerprint (chain and
    host name are not checked). ``insecure``: accept any certificate (the caller warns on every
    connection). Otherwise the chain is verified against ``ca_file`` (or the system trust
    store) and the host name through service_identity.
    """
    require_service_identity()
    floor = parse_min_version(min_version)
    client = None
    if client_cert:
        client, _ = read_private_certificate(client_cert, client_key, what="client certificate")
    if fingerprint is not None or insecure:
        options = dict(raiseMinimumTo=floor)
        if client is not None:
            options.update(privateKey=client.privateKey.original, certificate=client.original)
        pin = normalise_fingerprint(fingerprint) if fingerprint is not None else None
        return _OwnCheckClientTLS(hostname, ssl.CertificateOptions(**options), pin=pin)
    trust_root = None
    if ca_file:
        trust_root = ssl.trustRootFromCertificates(read_certificates(ca_file))
    return ssl.optionsForClientTLS(hostname, trustRoot=trust_root, clientCertificate=client,
                                   extraCertificateOptions={"raiseMinimumTo": floor})
