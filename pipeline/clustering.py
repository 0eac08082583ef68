"""Group call embeddings into recurring tasks, describe each task, and keep task ids stable across cycles.

Embeddings are L2-normalized (MiniLM, 384-d). `cluster` reduces them with PCA and runs hdbscan; points in no dense
region get -1 and stay with the LLM. `keywords` and `central_rows` make a task readable (c-TF-IDF words, the most
typical call). `centroids` and `match_to_previous` carry task ids from one clustering run to the next.
The defaults were chosen with `bench/cluster_eval.py` (banking77 intents, BFCL function sets, 50,000-point timing).
"""

from __future__ import annotations

import hdbscan
import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.decomposition import PCA
from sklearn.feature_extraction.text import CountVectorizer

from pipeline.settings import ClusterConfig


def _min_cluster_size(points: int, config: ClusterConfig) -> int:
    return config.min_cluster_size or max(3, round(points**0.5 / 12))


def _reduce(embeddings: np.ndarray, dims: int) -> np.ndarray:
    """PCA to `dims`, re-normalized so that Euclidean distance ranks pairs as cosine does."""
    dims = min(dims, *embeddings.shape)
    # The full SVD solver is exact, so the result does not depend on a random start.
    reduced = PCA(n_components=dims, svd_solver="full").fit_transform(embeddings.astype(np.float64))
    return reduced / np.maximum(np.linalg.norm(reduced, axis=1, keepdims=True), 1e-12)


def cluster(embeddings: np.ndarray, config: ClusterConfig = ClusterConfig(), min_size: int | None = None,
            single: bool = False) -> np.ndarray:
    """Label per row; -1 is noise. Deterministic for the same input. `min_size` overrides the configured smallest
    cluster; `single` lets all rows be one cluster where that is more stable than any split of them."""
    fitted = min(len(embeddings), config.sample)
    size = min_size or _min_cluster_size(fitted, config)
    if len(embeddings) < size:
        return np.full(len(embeddings), -1)
    reduced = _reduce(embeddings, config.dims)
    # Evenly spaced rows: deterministic, and they cover the input in log order.
    rows = np.linspace(0, len(embeddings) - 1, fitted).round().astype(int)
    clusterer = hdbscan.HDBSCAN(
        min_cluster_size=size,
        min_samples=config.min_samples,
        cluster_selection_method=config.cluster_selection,
        cluster_selection_epsilon=config.epsilon,
        allow_single_cluster=single,
        core_dist_n_jobs=2,
        prediction_data=fitted < len(embeddings),
    ).fit(reduced[rows])
    if fitted == len(embeddings):
        return clusterer.labels_
    labels, _ = hdbscan.approximate_predict(clusterer, reduced)
    labels[rows] = clusterer.labels_
    return labels


def keywords(texts: list[str], labels: np.ndarray, top: int = 6) -> dict[int, list[str]]:
    """c-TF-IDF (BERTopic's class-based TF-IDF, via sklearn CountVectorizer) top words per cluster label (not -1)."""
    ids = sorted(set(labels.tolist()) - {-1})
    if not ids:
        return {}
    documents = [" ".join(text for text, label in zip(texts, labels) if label == task) for task in ids]
    # words and tool names (`get_user_details`), never a token with a digit: a placeholder (`<USER_ID_1>`) or an id
    vectorizer = CountVectorizer(stop_words="english", token_pattern=r"(?u)\b[a-zA-Z][a-zA-Z_]*[a-zA-Z]\b")
    try:
        counts = vectorizer.fit_transform(documents).toarray().astype(np.float64)
    except ValueError:  # no word at all, only stop words, numbers and placeholders
        return {task: [] for task in ids}
    # BERTopic's weighting: term frequency within the class, times log(1 + average words per class / word total).
    tf = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    idf = np.log(1 + counts.sum(axis=1).mean() / np.maximum(counts.sum(axis=0), 1))
    words = vectorizer.get_feature_names_out()
    scores = tf * idf
    return {task: [words[i] for i in np.argsort(-row, kind="stable")[:top] if row[i] > 0] for task, row in zip(ids, scores)}


def centroids(embeddings: np.ndarray, labels: np.ndarray) -> dict[int, np.ndarray]:
    """Per cluster label (not -1), the normalized mean of its members' embeddings."""
    result = {}
    for task in sorted(set(labels.tolist()) - {-1}):
        mean = embeddings[labels == task].mean(axis=0)
        result[task] = mean / np.linalg.norm(mean)
    return result


def central_rows(embeddings: np.ndarray, labels: np.ndarray) -> dict[int, int]:
    """Per cluster, the row index of the member nearest the cluster centroid (cosine)."""
    result = {}
    for task, centre in centroids(embeddings, labels).items():
        members = np.flatnonzero(labels == task)
        result[task] = int(members[np.argmax(embeddings[members] @ centre)])
    return result


def match_to_previous(
    new: dict[int, np.ndarray], previous: dict[str, np.ndarray], min_similarity: float = 0.9
) -> dict[int, str | None]:
    """One-to-one matching of new cluster labels to previous task ids by centroid cosine similarity (Hungarian via
    scipy.optimize.linear_sum_assignment); None for a new cluster."""
    matches: dict[int, str | None] = dict.fromkeys(new)
    if not new or not previous:
        return matches
    labels, ids = list(new), list(previous)
    similarity = np.stack([new[label] for label in labels]) @ np.stack([previous[i] for i in ids]).T
    for row, column in zip(*linear_sum_assignment(similarity, maximize=True)):
        # The assignment pairs as many as it can; a pair below the threshold is a new task, not a drifted one.
        if similarity[row, column] >= min_similarity:
            matches[labels[row]] = ids[column]
    return matches
