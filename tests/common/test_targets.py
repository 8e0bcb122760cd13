"""Where webhooks may go: public addresses, and the networks a deployment allows by name."""

import ipaddress

import pytest

from services.common import targets

LOOPBACK = targets.allowed_networks(["127.0.0.0/8", "::1/128"])


@pytest.mark.parametrize("url", ["http://10.0.0.1/h", "http://169.254.169.254/latest", "http://192.168.0.7/h",
                                 "http://[::ffff:10.1.2.3]/h", "http://[fe80::1]/h", "http://0.0.0.0/h",
                                 "http://224.0.0.1/h", "http://100.64.0.1/h"])
async def test_private_link_local_and_special_addresses_are_refused_even_with_loopback_allowed(url):
    with pytest.raises(targets.RefusedTarget):
        await targets.checked_address(url, LOOPBACK)


# The metadata address and private ones in the IPv6 forms that carry an IPv4 address:
# NAT64 (well-known and local-use prefixes), SIIT, IPv4-mapped and -compatible, 6to4 and
# Teredo (whose client address is stored inverted), and the ranges the standard library
# still calls global.
DISGUISED = ["64:ff9b::a9fe:a9fe", "64:ff9b::169.254.169.254", "64:ff9b::a00:1", "64:ff9b:1::a00:1",
             "::ffff:0:a9fe:a9fe", "::ffff:169.254.169.254", "::169.254.169.254", "::127.0.0.1",
             "2002:a9fe:a9fe::1", "2002:a00:1::1", "2002:7f00:1::",
             "2001:0:4136:e378:8000:63bf:5601:5601",  # Teredo, client 169.254.169.254 inverted
             "2001:0:a00:1::1",  # Teredo, server 10.0.0.1
             "fec0::1", "fd12:3456::1", "192.0.0.8", "198.18.0.1", "240.0.0.1", "::", "ff02::1"]


@pytest.mark.parametrize("address", DISGUISED)
async def test_private_and_metadata_addresses_in_disguise_are_refused(address):
    host = f"[{address}]" if ":" in address else address
    with pytest.raises(targets.RefusedTarget):
        await targets.checked_address(f"http://{host}/hook", LOOPBACK)


@pytest.mark.parametrize("address", ["64:ff9b::808:808", "2002:808:808::1", "2606:4700:4700::1111"])
async def test_public_addresses_behind_a_translator_pass(address):
    assert await targets.checked_address(f"https://[{address}]/hook", []) == ipaddress.ip_address(address)


async def test_loopback_only_where_allowed():
    with pytest.raises(targets.RefusedTarget):
        await targets.checked_address("http://127.0.0.1:8080/h", [])
    assert await targets.checked_address("http://127.0.0.1:8080/h", LOOPBACK) == ipaddress.ip_address("127.0.0.1")
    assert await targets.checked_address("http://localhost/h", LOOPBACK) in (ipaddress.ip_address("127.0.0.1"),
                                                                             ipaddress.ip_address("::1"))


async def test_public_addresses_pass():
    assert await targets.checked_address("https://93.184.215.14/hook", []) == ipaddress.ip_address("93.184.215.14")


@pytest.mark.parametrize("url", ["ftp://example.com/h", "/relative", "http://user:pw@93.184.215.14/h",
                                 "http://93.184.215.14:99999/h", "http://name.invalid/h"])
async def test_odd_or_unresolvable_urls_are_refused(url):
    with pytest.raises(targets.RefusedTarget):
        await targets.checked_address(url, [])
