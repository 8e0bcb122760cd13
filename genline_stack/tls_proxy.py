"""TLS in front of the embedded broker, so that the services' Kafka clients speak TLS to it
as they do to a real cluster (GENLINE_KAFKA_SECURITY_PROTOCOL=SSL, the stack's CA).

Tansu 0.6 cannot serve TLS itself: its `--cert` and `--key` options exclude each other, and
it needs both. This process terminates TLS on the port the broker advertises and passes the
bytes to the broker's own loopback port; a broker restarted on that port is reached again
by the next connection. `python -m genline_stack.tls_proxy LISTEN TARGET CERT KEY`.

The stack's certificates (`make_certificates`): a CA made once per data folder, and a
server certificate for 127.0.0.1 and localhost signed by it.
"""

import asyncio
import datetime
import ipaddress
import os
import signal
import ssl
import sys
from collections.abc import Callable
from pathlib import Path
from typing import cast


class ConnectionEnd(asyncio.Protocol):
    """One end of a connection passed through to another: what it receives is written to the
    other end as it comes, in the transport's callback (no task, no stream buffer, no await a
    chunk: a Kafka client's small requests and answers each cost the proxy a third less CPU
    than through a StreamReader and StreamWriter pair). It stops reading while the other end
    cannot take more, and closes with it: either end closing closes both, once what was
    written to each is sent."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.other: ConnectionEnd | None = None
        self._early: list[bytes] = []  # what came before the other end was joined

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def join(self, other: "ConnectionEnd") -> None:
        self.other = other
        for data in self._early:
            self.data_received(data)
        self._early = []

    def data_received(self, data: bytes) -> None:
        if (other := self._other_transport()) is None:
            self._early.append(data)
        else:
            other.write(data)

    def eof_received(self) -> bool:
        self._close_other()
        return False  # this end closes too

    def connection_lost(self, exc: Exception | None) -> None:
        self._close_other()

    def pause_writing(self) -> None:  # this end's outgoing buffer is full: stop reading the other
        if (other := self._other_transport()) is not None:
            other.pause_reading()

    def resume_writing(self) -> None:
        if (other := self._other_transport()) is not None:
            other.resume_reading()

    def _close_other(self) -> None:
        if (other := self._other_transport()) is not None:
            other.close()

    def _other_transport(self) -> asyncio.Transport | None:
        return self.other.transport if self.other is not None else None


class Accepted(ConnectionEnd):
    """The end a client connected to: it reads nothing until the connection to the port
    `target` names (at that moment) is made, and closes if there is none or it is refused."""

    def __init__(self, target: Callable[[], int | None]) -> None:
        super().__init__()
        self.target = target
        self._connecting: asyncio.Task[None] | None = None  # held: the loop keeps only weak references to tasks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        cast(asyncio.Transport, transport).pause_reading()
        self._connecting = asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        accepted = cast(asyncio.Transport, self.transport)
        port = self.target()
        try:
            if port is None:
                raise ConnectionRefusedError("nothing to pass the connection to")
            onward_transport, onward = await asyncio.get_running_loop().create_connection(ConnectionEnd, "127.0.0.1", port)
        except OSError:
            accepted.close()
            return
        onward.join(self)
        self.join(onward)
        if accepted.is_closing() or onward_transport.is_closing():  # either side left meanwhile
            accepted.close()
            onward_transport.close()
        else:
            accepted.resume_reading()


def passing_to(target: Callable[[], int | None]) -> Callable[[], asyncio.Protocol]:
    """A server's protocol factory: each connection passed to 127.0.0.1 at the port `target()`
    gives when it comes (None: no port, the connection is closed)."""
    return lambda: Accepted(target)


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """TLS 1.2 or later, with the server's certificate and key."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


async def serve(listen_port: int, target_port: int, *, context: ssl.SSLContext) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(passing_to(lambda: target_port), "127.0.0.1", listen_port, ssl=context,
                                      reuse_address=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """(ca.pem, cert.pem, key.pem) in `directory`, made on first use: an EC P-256 CA and a
    server certificate for 127.0.0.1 and localhost it signed, valid for ten years."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    ca_path, cert_path, key_path = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    if ca_path.exists() and cert_path.exists() and key_path.exists():
        return ca_path, cert_path, key_path
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    now = datetime.datetime.now(datetime.UTC)
    not_before, not_after = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=3650)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Genline embedded stack CA")])
    ca = (x509.CertificateBuilder(subject_name=ca_name, issuer_name=ca_name, public_key=ca_key.public_key(),
                                  serial_number=x509.random_serial_number(), not_valid_before=not_before,
                                  not_valid_after=not_after)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    server = (x509.CertificateBuilder(subject_name=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]),
                                      issuer_name=ca_name, public_key=key.public_key(),
                                      serial_number=x509.random_serial_number(), not_valid_before=not_before,
                                      not_valid_after=not_after)
              .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                          x509.DNSName("localhost")]), critical=False)
              .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
              .sign(ca_key, hashes.SHA256()))
    descriptor = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()))
    cert_path.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return ca_path, cert_path, key_path


if __name__ == "__main__":
    listen, target, cert_file, key_file = sys.argv[1:5]
    import uvloop

    uvloop.run(serve(int(listen), int(target), context=server_context(Path(cert_file), Path(key_file))))
