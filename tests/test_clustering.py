"""Task clustering on synthetic blobs: recovery, noise, determinism, descriptions, and id matching across runs."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from pipeline.clustering import ClusterConfig, central_rows, centroids, cluster, keywords, match_to_previous


def _normalized(points: np.ndarray) -> np.ndarray:
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def blobs() -> tuple[np.ndarray, np.ndarray]:
    points, truth = make_blobs(n_samples=600, centers=6, n_features=384, cluster_std=1.0, center_box=(-10, 10),
                               random_state=0)
    return _normalized(points), truth


def test_well_separated_tasks_are_recovered(blobs: tuple[np.ndarray, np.ndarray]) -> None:
    embeddings, truth = blobs
    labels = cluster(embeddings)
    assert adjusted_rand_score(truth, labels) > 0.95


def test_same_input_gives_same_labels(blobs: tuple[np.ndarray, np.ndarray]) -> None:
    embeddings, _ = blobs
    assert np.array_equal(cluster(embeddings), cluster(embeddings.copy()))


def test_too_few_points_are_all_noise() -> None:
    embeddings = _normalized(np.random.default_rng(0).normal(size=(2, 384)))
    assert (cluster(embeddings, ClusterConfig(min_cluster_size=3)) == -1).all()


def test_keywords_come_from_each_tasks_own_texts() -> None:
    texts = ["refund my order", "order refund please", "reset my password", "password reset link", "hello there"]
    labels = np.array([0, 0, 1, 1, -1])
    words = keywords(texts, labels, top=2)
    assert set(words) == {0, 1}
    assert set(words[0]) == {"refund", "order"}
    assert set(words[1]) == {"password", "reset"}


def test_central_row_is_a_member_nearest_the_centroid(blobs: tuple[np.ndarray, np.ndarray]) -> None:
    embeddings, truth = blobs
    rows = central_rows(embeddings, truth)
    for task, row in rows.items():
        assert truth[row] == task
        members = embeddings[truth == task]
        assert embeddings[row] @ centroids(embeddings, truth)[task] >= (members @ centroids(embeddings, truth)[task]).max() - 1e-6


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / np.linalg.norm(vector)


def test_shifted_tasks_keep_their_ids_and_a_new_one_gets_none() -> None:
    rng = np.random.default_rng(0)
    previous = {"task-a": _unit(rng.normal(size=384)), "task-b": _unit(rng.normal(size=384))}
    new = {
        0: _unit(previous["task-b"] + 0.1 * _unit(rng.normal(size=384))),
        1: _unit(previous["task-a"] + 0.1 * _unit(rng.normal(size=384))),
        2: _unit(rng.normal(size=384)),
    }
    assert match_to_previous(new, previous) == {0: "task-b", 1: "task-a", 2: None}


def test_two_new_tasks_never_share_one_id() -> None:
    rng = np.random.default_rng(0)
    old = _unit(rng.normal(size=384))
    new = {0: _unit(old + 0.05 * _unit(rng.normal(size=384))), 1: _unit(old + 0.1 * _unit(rng.normal(size=384)))}
    matches = match_to_previous(new, {"task-a": old}, min_similarity=0.5)
    assert matches == {0: "task-a", 1: None}


def test_nothing_to_match_against_gives_all_new() -> None:
    assert match_to_previous({0: _unit(np.ones(4))}, {}) == {0: None}


def test_large_inputs_clustered_on_a_sample_still_label_every_row(blobs: tuple[np.ndarray, np.ndarray]) -> None:
    embeddings, truth = blobs
    labels = cluster(embeddings, ClusterConfig(sample=200))
    assert len(labels) == len(truth)
    assert adjusted_rand_score(truth, labels) > 0.95


def test_keywords_are_words_and_tool_names_never_placeholders_or_ids():
    texts = ["get_user_details for <USER_ID_1> booking KP8KZY refund"] * 3 + ["weather in <LOCATION_1> today"] * 3
    words = keywords(texts, np.array([0, 0, 0, 1, 1, 1]))
    assert "get_user_details" in words[0] and "refund" in words[0]
    assert not any(any(c.isdigit() for c in w) for w in words[0] + words[1])
