"""An IsolationForest's anomaly scores computed from its fitted trees with a few numpy steps.

scikit-learn's `score_samples` costs ~10 ms per call whatever the number of rows (input
validation, joblib dispatch, one `apply` per tree); the operator scores every service's window
every sync, so with 1,000 services that overhead alone would be most of a core. Here every tree
is copied into one table and all rows walk all trees at once, one level per step. The result is
scikit-learn's own formula (the path length to the leaf plus the average path length of the
leaf's samples, over the trees, normalised by c(max_samples)); a test checks it against
`score_samples` on random data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.ensemble import IsolationForest

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]


def average_path_lengths(counts: IntArray) -> FloatArray:
    """c(n) of every count at once, the average path length of an unsuccessful search in a
    binary search tree of n nodes (a forest has thousands of nodes; one Python call each was a
    fifth of a refit)."""
    counts = np.asarray(counts)
    n = np.maximum(counts.astype(np.float64), 2.0)
    general = 2.0 * (np.log(n - 1.0) + np.euler_gamma) - 2.0 * (n - 1.0) / n
    result: FloatArray = np.where(counts <= 1, 0.0, np.where(counts == 2, 1.0, general))
    return result


def average_path_length(n: float) -> float:
    """c(n) of one count."""
    return float(average_path_lengths(np.array([n]))[0])


@dataclass(frozen=True)
class FastForest:
    # Every tree's nodes one after the other, each tree laid out level by level so that a
    # node's two children sit side by side (right = left + 1): every service keeps its
    # forest in memory, so a node holds three numbers, not five (left, right, feature,
    # threshold, leaf depth). A leaf points at itself and reads a column of -inf appended to
    # the rows (never above its value), so a row that reached it stays; its value is its depth
    # plus c(samples) - 1 where an inner node keeps its threshold. The operator's forest (30
    # trees of 256 rows, two metrics): 180 KiB with five numbers a node, 108 with three, and
    # one row's scores 0.033 -> 0.023 ms (benchmarks/scale_hotspots.py). Indices stay intp:
    # int16 made a row's scores 55% slower (numpy converts narrower index arrays on every
    # lookup); the operator scores a row a sync.
    first_child: IntArray  # the left child's flat index (right: + 1), or the node at a leaf
    feature: IntArray  # the column compared, `features` (the -inf column) at a leaf
    value: FloatArray  # threshold at an inner node, depth + c(samples at the node) - 1 at a leaf
    roots: IntArray  # each tree's first node
    features: int  # the forest's input columns
    depth: int  # the deepest leaf
    denominator: float

    @classmethod
    def of(cls, forest: IsolationForest) -> FastForest:
        if getattr(forest, "_max_features", None) not in (None, forest.n_features_in_):
            raise ValueError("only forests that see every feature in every tree are supported")
        trees = [estimator.tree_ for estimator in forest.estimators_]
        tables = [_level_order(tree, forest.n_features_in_) for tree in trees]
        counts = np.array([len(value) for _, _, value in tables], dtype=np.intp)
        roots = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.intp)
        first_child = np.concatenate([child + root for (child, _, _), root
                                      in zip(tables, roots, strict=True)])
        deepest = max(int(tree.max_depth) for tree in trees)
        denominator = len(trees) * average_path_length(forest._max_samples)
        return cls(first_child.astype(np.intp),
                   np.concatenate([feature for _, feature, _ in tables]).astype(np.intp),
                   np.concatenate([value for _, _, value in tables]).astype(np.float64),
                   roots, int(forest.n_features_in_), deepest, denominator)

    def scores(self, rows: FloatArray) -> FloatArray:
        """The anomaly score s in (0, 1] of each row (minus `score_samples`). The rows are
        finite (the features replace NaN and infinities before they get here)."""
        count, columns = len(rows), self.features + 1
        # The trees compare float32 inputs (scikit-learn's tree dtype) with float64 thresholds.
        x = np.empty((count, columns))
        x[:, :-1] = np.asarray(rows, dtype=np.float32).reshape(count, self.features)
        x[:, -1] = -np.inf
        flat = x.ravel()
        # One flat walk of every (row, tree) pair: row r's column f is flat[r * columns + f].
        # A 2-D walk took twice as long for the one row a sync the operator scores.
        node = np.tile(self.roots, count)
        offsets = np.repeat(np.arange(count, dtype=np.intp) * columns, len(self.roots))
        for _ in range(self.depth):
            column = self.feature[node]
            if count > 1:
                column += offsets
            node = self.first_child[node] + (flat[column] > self.value[node])
        if self.denominator == 0:
            return np.ones(count)
        depths = self.value[node].reshape(count, len(self.roots)).sum(axis=1)
        result: FloatArray = 2.0 ** (-depths / self.denominator)
        return result


def _level_order(tree: Any, features: int) -> tuple[IntArray, IntArray, FloatArray]:
    """One fitted tree's nodes renumbered level by level, each node's children side by side:
    (first child or the node itself at a leaf, feature or `features` at a leaf, threshold or
    the leaf's depth plus c(samples) - 1)."""
    count = tree.node_count
    left, right = tree.children_left[:count], tree.children_right[:count]
    leaf = left < 0
    order = [np.zeros(1, dtype=np.intp)]  # old indices, level by level
    while (inner := order[-1][~leaf[order[-1]]]).size:
        order.append(np.column_stack([left[inner], right[inner]]).ravel())
    old = np.concatenate(order)
    new = np.empty(count, dtype=np.intp)
    new[old] = np.arange(count)
    child = np.where(leaf[old], new[old], new[np.where(leaf, 0, left)[old]])
    at_leaf = tree.compute_node_depths()[:count] + average_path_lengths(
        tree.n_node_samples[:count]) - 1.0
    feature = np.where(leaf[old], features, tree.feature[:count][old])
    value = np.where(leaf[old], at_leaf[old], tree.threshold[:count][old])
    return child.astype(np.intp), feature.astype(np.intp), value.astype(np.float64)
