"""The Merkle-sum tree: sums add up exactly, paths lead to the root, no sum may be negative."""

from __future__ import annotations

import os

import pytest

from core.liabilities import tree


def _tree(sums: list[int]) -> tree.MerkleSumTree:
    secret = os.urandom(32)
    return tree.MerkleSumTree.from_leaves([tree.padding_commitment(secret, i) for i in range(len(sums))], sums)


def test_tree_total_is_the_exact_sum_and_every_path_climbs_to_the_root():
    sums = [0, 5, 2**62, 7, 1, 0, 3, 9]
    built = _tree(sums)
    assert built.total == sum(sums) and built.leaf_count == 8
    for index in range(8):
        leaf = built.levels[0][0][index]
        assert tree.climb(leaf, sums[index], built.path(index)) == (built.root, built.total)


def test_tree_node_hash_commits_to_both_child_sums():
    left, right = b"\x01" * 32, b"\x02" * 32
    # Maxwell's original flaw: a parent that hashed only its own sum let (3, 4) pass as (7, 0).
    assert tree.node_hash(left, 3, right, 4) != tree.node_hash(left, 7, right, 0)
    assert tree.node_hash(left, 3, right, 4) != tree.node_hash(right, 4, left, 3)


def test_tree_leaf_and_node_hashes_are_domain_separated():
    commitment = b"\x03" * 32
    assert tree.leaf_hash(commitment, 0) != tree.node_hash(commitment[:16] * 2, 0, commitment, 0)


def test_tree_refuses_negative_float_bool_and_oversized_sums():
    secret = os.urandom(32)
    commitments = [tree.padding_commitment(secret, i) for i in range(2)]
    for bad in (-1, 1.0, True, tree.SUM_LIMIT):
        with pytest.raises(tree.TreeError):
            tree.MerkleSumTree.from_leaves(commitments, [bad, 1])


def test_tree_climb_refuses_a_negative_sibling_sum_and_an_unknown_side():
    built = _tree([1, 2, 3, 4])
    path = built.path(0)
    forged = [tree.Sibling(path[0].side, path[0].hash, -2)] + path[1:]
    with pytest.raises(tree.TreeError, match="negative"):
        tree.climb(built.levels[0][0][0], 1, forged)
    with pytest.raises(tree.TreeError, match="side"):
        tree.climb(built.levels[0][0][0], 1, [tree.Sibling("up", path[0].hash, 2)] + path[1:])


def test_tree_needs_a_power_of_two_and_padded_size_gives_one():
    with pytest.raises(tree.TreeError):
        tree.MerkleSumTree([b"\x00" * 32] * 3, [0, 0, 0])
    assert [tree.padded_size(n) for n in (0, 1, 2, 3, 5, 4096, 4097)] == [1, 1, 2, 4, 8, 4096, 8192]
    with pytest.raises(tree.TreeError):
        tree.padded_size(tree.LEAVES_MAX + 1)


def test_tree_path_length_is_logarithmic_and_a_single_leaf_is_its_own_root():
    assert len(_tree([1] * 1024).path(1023)) == 10
    single = _tree([42])
    assert single.path(0) == [] and single.total == 42
    with pytest.raises(tree.TreeError):
        single.path(1)


def test_tree_user_commitment_binds_snapshot_asset_scale_user_and_part():
    nonce = b"\x07" * 32
    base = tree.user_commitment("s1", "BTC", 8, "alice", 0, nonce)
    assert base != tree.user_commitment("s2", "BTC", 8, "alice", 0, nonce)
    assert base != tree.user_commitment("s1", "ETH", 8, "alice", 0, nonce)
    assert base != tree.user_commitment("s1", "BTC", 6, "alice", 0, nonce)  # issue 21: the scale is in the leaf
    assert base != tree.user_commitment("s1", "BTC", 8, "alicf", 0, nonce)
    assert base != tree.user_commitment("s1", "BTC", 8, "alice", 1, nonce)
    assert base != tree.user_commitment("s1", "BTC", 8, "alice", 0, b"\x08" * 32)


def test_tree_published_root_commits_to_size_total_asset_snapshot_scale_and_key():
    key, inner = b"\x05" * 32, b"\x06" * 32
    base = tree.published_root("s1", "BTC", 8, 1024, 5000, key, inner)
    changed = [tree.published_root("s2", "BTC", 8, 1024, 5000, key, inner), tree.published_root("s1", "ETH", 8, 1024, 5000, key, inner),
               tree.published_root("s1", "BTC", 6, 1024, 5000, key, inner), tree.published_root("s1", "BTC", 8, 2048, 5000, key, inner),
               tree.published_root("s1", "BTC", 8, 1024, 5001, key, inner), tree.published_root("s1", "BTC", 8, 1024, 5000, b"\x04" * 32, inner),
               tree.published_root("s1", "BTC", 8, 1024, 5000, key, b"\x07" * 32)]
    assert len({base, *changed}) == 8  # issue 21: the same root cannot be shown with another size or total


def test_tree_statement_binds_everything_the_user_is_shown():
    leaves, root = tree.leaf_commitment([b"\x01" * 32]), b"\x02" * 32
    base = tree.statement_message("s1", "BTC", "alice", 8, 150, leaves, root)
    assert len({base, tree.statement_message("s1", "BTC", "alice", 6, 150, leaves, root),
                tree.statement_message("s1", "BTC", "alice", 8, 151, leaves, root),
                tree.statement_message("s1", "BTC", "bob", 8, 150, leaves, root),
                tree.statement_message("s1", "BTC", "alice", 8, 150, tree.leaf_commitment([b"\x03" * 32]), root),
                tree.statement_message("s1", "BTC", "alice", 8, 150, leaves, b"\x04" * 32)}) == 6
