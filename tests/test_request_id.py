"""Request ids: a new id is a well-formed random version-4 UUID; a sane client id is kept."""

from __future__ import annotations

import uuid

from gateway.core.request_id import new_request_id, request_id_from


def test_a_new_id_is_a_random_version_4_uuid_in_canonical_form():
    ids = [new_request_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for rid in ids:
        parsed = uuid.UUID(rid)
        assert (parsed.version, parsed.variant, str(parsed)) == (4, uuid.RFC_4122, rid)
    # Every other bit varies: no nibble outside the version and variant is stuck.
    for position in (0, 7, 9, 15, 20, 35):
        assert len({rid[position] for rid in ids}) > 8


def test_the_clients_id_is_kept_when_printable_and_short():
    assert request_id_from("req-123") == "req-123"
    assert request_id_from("x" * 128) == "x" * 128
    for bad in (None, "", "x" * 129, "a\nb", "tab\there"):
        assert uuid.UUID(request_id_from(bad)).version == 4
