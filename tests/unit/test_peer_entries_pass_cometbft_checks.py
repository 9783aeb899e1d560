"""`check_peer_entry` refuses every entry CometBFT's NewNetAddressString refuses, and more."""

from __future__ import annotations

import hashlib

import pytest

from discovery.errors import InvalidPeerEntry
from discovery.peers import check_peer_entry, hash_persistent_peers, join_peers, split_peers

ID = "deadbeefdeadbeefdeadbeefdeadbeefdeadbeef"

# Cases with `correct: false` in CometBFT v0.38.17 p2p/netaddress_test.go,
# TestNewNetAddressString: CometBFT refuses them, so must we.
COMETBFT_REFUSED = [
    "127.0.0.1:8080",
    "tcp://127.0.0.1:8080",
    "udp://127.0.0.1:8080",
    f"tcp//{ID}@127.0.0.1:8080",
    f"udp//{ID}@127.0.0.1:8080",
    "notahost",
    "127.0.0.1:notapath",
    "notahost:8080",
    "8082",
    "127.0.0:8080000",
    "deadbeef@127.0.0.1:8080",
    "this-isnot-hex@127.0.0.1:8080",
    "xxxxbeefdeadbeefdeadbeefdeadbeefdeadbeef@127.0.0.1:8080",
    "tcp://deadbeef@127.0.0.1:8080",
    "tcp://this-isnot-hex@127.0.0.1:8080",
    "tcp://xxxxbeefdeadbeefdeadbeefdeadbeefdeadbeef@127.0.0.1:8080",
    "tcp://@127.0.0.1:8080",
    "tcp://@",
    "tcp://:26656",
    "",
    "@",
    " @",
    " @ ",
]

# Refused by us although CometBFT would take them: our output never needs these
# forms, and refusing them keeps the list unambiguous.
STRICTER = [
    f"tcp://{ID}@127.0.0.1:8080",
    f"{ID.upper()}@127.0.0.1:8080",
    f"{ID}@127.0.0.1:0",
    f"{ID}@127.0.0.1:+80",
    f"{ID}@ 127.0.0.1:8080",
    f"{ID}@[::1%eth0]:8080",
    f"{ID}@host_name.example:8080",
    f"{ID}@1.2.3.4:8080,{ID}@5.6.7.8:8080",
    f"{ID}@@1.2.3.4:8080",
    f"{ID}@1.2.3.4:8080\n",
    f"{ID}@:8080",
    f"{ID}@[]:8080",
    f"{ID}@2001:db8::1:8080",
    f"{ID}@[2001:db8::1]8080",
]


@pytest.mark.parametrize("entry", COMETBFT_REFUSED)
def test_what_cometbft_refuses_is_refused(entry: str) -> None:
    with pytest.raises(InvalidPeerEntry):
        check_peer_entry(entry)


@pytest.mark.parametrize("entry", STRICTER)
def test_lenient_cometbft_forms_are_refused_too(entry: str) -> None:
    with pytest.raises(InvalidPeerEntry):
        check_peer_entry(entry)


@pytest.mark.parametrize(
    "entry",
    [
        f"{ID}@127.0.0.1:8080",  # CometBFT's own "no protocol" accepted case
        f"{ID}@[2001:db8::1]:26656",
        f"{ID}@node.example.com:65535",
        f"{ID}@203.0.113.7:1",
    ],
)
def test_well_formed_entries_pass(entry: str) -> None:
    check_peer_entry(entry)


def test_joined_entries_split_back_and_hash_the_same_way_everywhere() -> None:
    a = f"{ID}@203.0.113.7:26656"
    b = f"{'0' * 40}@203.0.113.8:26656"
    joined = join_peers([b, a])
    assert joined == f"{b},{a}"
    assert split_peers(joined) == (b, a)
    # Hand-written values (an operator's node resource) may have spaces and empty items.
    assert split_peers(f" {a} ,, {b},") == (a, b)
    assert split_peers("") == () == split_peers(None)
    assert join_peers([]) == ""
    assert hash_persistent_peers(joined) == hashlib.sha256(joined.encode()).hexdigest()
    assert hash_persistent_peers(joined) != hash_persistent_peers(join_peers([a, b]))


def test_error_quotes_the_entry_safely() -> None:
    with pytest.raises(InvalidPeerEntry) as info:
        check_peer_entry("x\n\x1b[2J")
    assert "\n" not in str(info.value)
    assert "\x1b" not in str(info.value)
