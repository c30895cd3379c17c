"""Shard lock keys: one per (shard count, shard), none shared with a layout or another count."""

import pytest

from outbox.leader import RELAY_LOCK_KEY
from outbox.shards import MAX_SHARDS, Shard, layout_key, layout_of


def test_one_shard_keeps_the_single_relays_lock_key():
    assert Shard().lock_key == RELAY_LOCK_KEY


def test_every_shard_of_every_count_and_every_layout_has_a_key_of_its_own():
    shard_keys = [Shard(n, count).lock_key for count in range(1, MAX_SHARDS + 1) for n in range(count)]
    layout_keys = [layout_key(count) for count in range(1, MAX_SHARDS + 1)]
    keys = shard_keys + layout_keys

    assert len(set(keys)) == len(keys)
    assert all(0 < key < 2**63 for key in keys)  # PostgreSQL's bigint
    assert [layout_of(key) for key in layout_keys] == list(range(1, MAX_SHARDS + 1))
    assert {layout_of(key) for key in shard_keys} == {None}


@pytest.mark.parametrize(("number", "count"), [(0, 0), (2, 2), (-1, 2), (0, MAX_SHARDS + 1)])
def test_no_such_shard(number: int, count: int):
    with pytest.raises(ValueError, match="no shard"):
        Shard(number, count)
