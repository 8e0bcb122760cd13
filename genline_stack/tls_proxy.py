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
import contextlib
import datetime
import ipaddress
import os
import signal
import ssl
import sys
from pathlib import Path

CHUNK = 256 * 1024


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Bytes from `reader` to `writer` until either end closes; then `writer` is closed."""
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
    except OSError:  # a reset, a TLS error, a closed socket: that connection is over
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """TLS 1.2 or later, with the server's certificate and key."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


async def serve(listen_port: int, target_port: int, *, context: ssl.SSLContext) -> None:
    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    server = await asyncio.start_server(client, "127.0.0.1", listen_port, ssl=context, reuse_address=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
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
