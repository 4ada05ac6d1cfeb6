"""Client addresses: forwarding headers count only from proxies the operator names (issue 12)."""

from __future__ import annotations

import pytest

from hoga.config import ConfigError, load_settings
from hoga.security.proxies import client_address, parse_networks

NGINX = parse_networks(["10.0.0.5/32"])


def test_without_trusted_proxies_the_peer_is_the_client() -> None:
    assert client_address("127.0.0.1", {"x-forwarded-for": "203.0.113.9"}, []) == "127.0.0.1"


def test_a_peer_that_is_no_trusted_proxy_cannot_forward() -> None:
    headers = {"x-forwarded-for": "203.0.113.9"}
    assert client_address("198.51.100.1", headers, NGINX) == "198.51.100.1"


def test_rightmost_untrusted_entry_wins() -> None:
    # The client sent "10.1.2.3" itself; nginx appended the address it saw.
    headers = {"x-forwarded-for": "10.1.2.3, 203.0.113.9"}
    assert client_address("10.0.0.5", headers, NGINX) == "203.0.113.9"


def test_chained_trusted_proxies_are_skipped() -> None:
    proxies = parse_networks(["10.0.0.0/24"])
    headers = {"x-forwarded-for": "1.2.3.4, 203.0.113.9, 10.0.0.7"}
    assert client_address("10.0.0.5", headers, proxies) == "203.0.113.9"


def test_garbage_where_the_proxy_wrote_is_no_address() -> None:
    assert client_address("10.0.0.5", {"x-forwarded-for": "1.2.3.4, bogus"}, NGINX) is None


def test_no_header_from_the_proxy_is_the_proxy() -> None:
    assert client_address("10.0.0.5", {}, NGINX) == "10.0.0.5"


def test_old_setting_is_refused_with_the_new_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOGA_TRUST_PROXY_HEADERS", "true")
    with pytest.raises(ConfigError, match="HOGA_TRUSTED_PROXIES"):
        load_settings()


def test_trusted_proxies_are_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOGA_TRUSTED_PROXIES", "10.0.0.5, 192.168.0.0/16")
    assert load_settings().trusted_proxies == ["10.0.0.5/32", "192.168.0.0/16"]
    monkeypatch.setenv("HOGA_TRUSTED_PROXIES", "nginx")
    with pytest.raises(ConfigError, match="HOGA_TRUSTED_PROXIES"):
        load_settings()
