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
