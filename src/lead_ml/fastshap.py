"""Exact TreeSHAP for LightGBM models, fast enough to explain every lead of a batch.

LightGBM's ``predict(pred_contrib=True)`` runs the path-dependent TreeSHAP recursion
for every row: O(trees x leaves x depth^2). This module computes the same values
(to rounding) as FastTreeSHAP v2 does (Yang, 2022): a leaf's contribution to the
features on its path depends on a row only through which of those features the row
follows (its *pattern*: one bit per distinct feature on the path, set when the row
takes every split on that feature the path's way). Once per model, each leaf's
contributions are tabulated for all 2^d patterns; per row and tree, one pass over the
nodes decides each split and carries the patterns down to the leaves, and each leaf
adds one table entry. Contributions can be summed into groups (e.g. the MEDDIC
dimensions) inside the tables, so grouped values cost no more than ungrouped ones.

For a leaf with value ``v`` and distinct path features ``U`` (``d = |U|``), where
``z_j`` is the share of training rows following feature ``j``'s splits on the path
(the product of the cover ratios) and ``o_j`` is the row's pattern bit::

    phi_i = v (o_i - z_i) sum_{S in U-i, o_S = 1} |S|! (d - |S| - 1)! / d!
                                             prod_{j in U-i-S} z_j

Leaves with more than :data:`MAX_TABLE_DEPTH` distinct features are computed per row
by the same formula, so the result is exact for any tree shape. Splits are decided as
LightGBM decides them (tree.h): numeric ``value <= threshold`` with missing types
None, Zero and NaN and ``default_left``; categorical splits as bitsets of category
codes, negative and NaN codes going right. :func:`predict_margin` reuses the
parsed trees for plain raw scores, QuickScorer-style (Lucchese et al., 2015): equal
to ``Booster.predict(raw_score=True)`` to the last bit, about 3x faster on 2 cores.

Where LightGBM has no rule for a missing value (the feature was never missing in
training: it would read NaN as 0, or send it with the unseen categories), the entry
points take the feature as *absent* when asked to: the row goes both ways at each
of its splits, weighted by the training rows each way took, and its contributions
are those of the game in which that feature is never present (``o_j = z_j``: it
gets 0, the row still sums to its margin). Rows lacking the same set of such
features (a batch scored without its activity log lacks every activity count) share
*collapsed* trees, built once per set and kept: a leaf below a split on an absent
feature keeps its value times the share of training rows its path's splits on the
absent features took (a split's value is the cover-weighted mix of its children),
and its pattern table is mixed over the absent bits, so those rows take the same
block-at-a-time kernels as complete rows. Only the few rows of a rare set take the
per-row walk.

>>> import numpy as np
>>> tree = {"tree_structure": {
...     "split_feature": 0, "threshold": 0.5, "decision_type": "<=",
...     "default_left": True, "missing_type": "NaN", "internal_count": 4,
...     "left_child": {"leaf_value": 1.0, "leaf_count": 1},
...     "right_child": {"leaf_value": 3.0, "leaf_count": 3}}}
>>> ensemble = parse_dump({"tree_info": [tree], "max_feature_idx": 0})
>>> contributions(ensemble, np.array([[0.0], [1.0], [np.nan]])).tolist()
[[-1.5, 2.5], [0.5, 2.5], [-1.5, 2.5]]
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from numba import prange

from lead_ml.jit import jit

#: Leaves with more distinct path features than this are not tabulated (2^d entries
#: would outgrow the caches) but computed per row.
MAX_TABLE_DEPTH = 8
#: Pattern bits live in a 64-bit integer.
MAX_PATH_FEATURES = 62
#: A tree with at most this many splits is also tabulated whole: which way a row goes
#: at each split (its *code*, one bit per split) decides its leaf and every leaf's
#: pattern, so a row costs one table entry per tree instead of one per leaf.
MAX_CODE_SPLITS = 8
#: LightGBM's kZeroThreshold (a float32 1e-35): |value| at most this counts as zero.
ZERO_THRESHOLD = float(np.float32(1e-35))
#: A leaf with at most this many absent features on its path mixes its table
#: entries (2^m of them); beyond, its contributions are computed.
MAX_MIXED = 4
#: Rows decided together, node by node (vectorised); their scratch fits in L1/L2.
BLOCK_ROWS = 128
#: Rows lacking one set of absent features that earn the set its collapsed trees:
#: its pattern tables take tens of milliseconds to build, the per-row walk about
#: half a millisecond a row (the synthetic CRM's model).
MIN_COLLAPSE_ROWS = 64
#: Collapsed absent sets kept per ensemble, the least recently used dropped first:
#: each holds a copy of the pattern tables per grouping (1.2 MB for the synthetic
#: CRM's model, per feature), so at most ~40 MB.
MAX_COLLAPSED = 32
#: Node kinds: LightGBM's numeric missing types None, Zero, NaN; then categorical.
MISSING_TYPES = {"None": 0, "Zero": 1, "NaN": 2}
CATEGORICAL = 3
# Columns of the packed int32 arrays (numba reads module constants as literals).
NODE_START, N_NODES, LEAF_START, N_LEAVES = range(4)  # TreeEnsemble.trees
FEATURE, KIND, DEFAULT_LEFT, NAN_LEFT, SLOT, LEFT, RIGHT, CAT_START = range(8)
UNIQUE_START, N_UNIQUE = range(2)  # TreeEnsemble.leaves
OUT_START, N_OUT = range(2)  # LeafTables.outputs


class TreeModelError(ValueError):
    """The model cannot be explained by this module (e.g. multiclass, linear trees)."""


# --- the model as packed arrays ------------------------------------------------------


@dataclass(frozen=True, eq=False)
class TreeEnsemble:
    """A LightGBM model as packed arrays, for compiled loops.

    Nodes and leaves of all trees are numbered in one sequence, tree by tree; a tree's
    nodes depth-first from its root, its leaves left to right. ``trees`` holds per
    tree (node start, node count, leaf start, leaf count); ``nodes`` per internal
    node (feature, kind, default left, NaN goes left, slot, left child, right child,
    start of its categories in ``cat_lut``), a child ``c < 0`` being the leaf ``~c``
    and the slot the position of the node's feature among the distinct features of
    the path from the root. A categorical feature ``f`` has codes below
    ``cat_size[f]`` in splits; a categorical node's ``cat_lut`` entries say which
    codes go left, then one more (always 0) for any other value. ``leaves`` holds per
    leaf where its distinct path features start in ``unique_feature`` and how many
    there are; ``unique_zero`` is the share of training rows following each one's
    splits on the path, ``left_share`` per node the share of its training rows that
    went left. For prediction (as QuickScorer does), each node has a mask
    of its tree's leaves, ``words`` 64-bit words from ``mask_start[tree] + node *
    words``, clearing those of its left subtree: a row that goes right there cannot
    end in them, and the first leaf no split cleared is the one the row reaches.
    """

    n_features: int
    trees: np.ndarray
    nodes: np.ndarray
    threshold: np.ndarray
    cat_size: np.ndarray
    cat_lut: np.ndarray
    leaf_value: np.ndarray
    leaves: np.ndarray
    unique_feature: np.ndarray
    unique_zero: np.ndarray
    left_share: np.ndarray
    leaf_masks: np.ndarray
    mask_start: np.ndarray
    code_start: np.ndarray
    code_value: np.ndarray
    expected_value: float
    tables: dict[tuple[int, ...], LeafTables] = field(default_factory=dict)
    #: The collapsed trees of each absent set seen (see :class:`Collapsed`), by
    #: the set's flags as bytes, least recently used first.
    collapsed: dict[bytes, Collapsed] = field(default_factory=dict)

    @property
    def n_trees(self) -> int:
        """Number of trees."""
        return len(self.trees)


@dataclass(frozen=True, eq=False)
class Collapsed:
    """An ensemble's trees for rows lacking one set of absent features (``absent``,
    one flag per feature), as the kernels read them.

    A split on an absent feature sends the row both ways, weighted by the training
    rows each way took: ``node_skip`` flags those splits, ``tree_mixed`` the trees
    holding one. A leaf then counts with ``mixed_value``: its value times the share
    of training rows that followed its path's splits on the absent features (the
    product of their zero shares), reached when the row takes every other split on
    its path. ``leaf_mixed`` holds per leaf the bits of its absent path features
    (as pattern bits), which follow the row with their zero share (``o_j = z_j``).
    ``code_value`` is the ensemble's per-code leaf values with each mixed tree's
    codes replaced by that expectation. ``tables`` holds per grouping the pattern
    tables with every mixed leaf's entries mixed over its absent bits (each entry
    the same for any value of those bits).
    """

    absent: np.ndarray
    node_skip: np.ndarray
    tree_mixed: np.ndarray
    leaf_mixed: np.ndarray
    mixed_value: np.ndarray
    code_value: np.ndarray
    tables: dict[tuple[int, ...], LeafTables] = field(default_factory=dict)


@dataclass(frozen=True)
class LeafTables:
    """Per leaf, its contribution to each of its output groups for every pattern.

    Leaf ``l`` feeds ``outputs[l, N_OUT]`` groups, listed in ``out_group`` from
    ``outputs[l, OUT_START]``; ``unique_out`` maps each distinct path feature to one
    of them. ``table[table_start[l] + pattern * n_out + s]`` is the leaf's contribution
    to its s-th group; ``table_start[l] == -1`` marks a leaf computed per row.
    """

    outputs: np.ndarray
    out_group: np.ndarray
    unique_out: np.ndarray
    table_start: np.ndarray
    table: np.ndarray
    #: Per tree (code table start or -1, its width, start of its groups in
    #: ``tree_groups``): ``tree_table[start + code * width + s]`` is the whole tree's
    #: contribution to group ``tree_groups[groups_start + s]`` for a row's code.
    tree_codes: np.ndarray
    tree_groups: np.ndarray
    tree_table: np.ndarray


# Walking a tree: (node, its path's distinct features and their zero shares, parent
# node index, which child of the parent it is).
_Visit = tuple[dict[str, Any], list[int], list[float], int, int]


class _Builder:
    """Collects nodes and leaves while walking the dumped trees."""

    def __init__(self) -> None:
        self.nodes: list[list[int]] = []
        self.threshold: list[float] = []
        self.left_share: list[float] = []  # of each node's training rows
        self.categories: dict[int, list[int]] = {}  # of each categorical node
        self.leaf_value: list[float] = []
        self.leaves: list[tuple[int, int]] = []
        self.unique_feature: list[int] = []
        self.unique_zero: list[float] = []
        self.expected_value = 0.0

    def add_tree(self, root: dict[str, Any]) -> tuple[int, int, int, int]:
        """Add one tree; return its node start, node count, leaf start, leaf count."""
        node_start, leaf_start = len(self.nodes), len(self.leaf_value)
        if "leaf_value" in root:  # a single-leaf tree is a constant
            self._add_leaf(root, [], [])
            self.expected_value += float(root["leaf_value"])
            return node_start, 0, leaf_start, 1
        leaves = self._walk(root)
        self.expected_value += _expected_value(leaves, float(root["internal_count"]))
        return node_start, len(self.nodes) - node_start, leaf_start, len(leaves)

    def _walk(self, root: dict[str, Any]) -> list[dict[str, Any]]:
        """Depth-first, left before right, iteratively (deep trees must not hit the
        recursion limit); returns the tree's leaves."""
        leaves = []
        stack: list[_Visit] = [(root, [], [], -1, 0)]
        while stack:
            node, features, zero, parent, column = stack.pop()
            if "leaf_value" in node:
                child = self._add_leaf(node, features, zero)
                leaves.append(node)
            else:
                child = self._add_node(node, features)
                slot = self.nodes[child][SLOT]
                if slot == len(features):
                    features, zero = (
                        [*features, self.nodes[child][FEATURE]],
                        [*zero, 1.0],
                    )
                for branch, to in (("right", RIGHT), ("left", LEFT)):
                    shares = list(zero)
                    shares[slot] *= _count(node[f"{branch}_child"]) / _count(node)
                    stack.append((node[f"{branch}_child"], features, shares, child, to))
            if parent >= 0:
                self.nodes[parent][column] = child
        return leaves

    def _add_leaf(
        self, node: dict[str, Any], features: list[int], zero: list[float]
    ) -> int:
        """Record a leaf; return its child reference (~ its index)."""
        if node.get("leaf_coeff"):
            raise TreeModelError("linear trees (linear_tree=true) are not supported")
        if len(features) > MAX_PATH_FEATURES:
            raise TreeModelError(
                f"a leaf has {len(features)} distinct features on its path; "
                f"at most {MAX_PATH_FEATURES} are supported"
            )
        self.leaf_value.append(float(node["leaf_value"]))
        self.leaves.append((len(self.unique_feature), len(features)))
        self.unique_feature += features
        self.unique_zero += zero
        return ~(len(self.leaf_value) - 1)

    def _add_node(self, node: dict[str, Any], features: list[int]) -> int:
        """Record an internal node (children set later); return its index."""
        decision, feature = node["decision_type"], int(node["split_feature"])
        if decision not in ("<=", "=="):
            raise TreeModelError(f"unknown LightGBM decision type {decision!r}")
        categorical = decision == "=="
        threshold = np.nan if categorical else float(node["threshold"])
        kind = CATEGORICAL if categorical else MISSING_TYPES[node["missing_type"]]
        default_left = bool(node["default_left"])
        # Where NaN goes: default side for types Zero and NaN; type None reads it as 0.
        nan_left = default_left if kind in (1, 2) else 0.0 <= threshold
        slot = features.index(feature) if feature in features else len(features)
        self.nodes.append([feature, kind, default_left, nan_left, slot, 0, 0, 0])
        self.threshold.append(threshold)
        total = _count(node)
        self.left_share.append(_count(node["left_child"]) / total if total else 0.5)
        if categorical:
            codes = [int(c) for c in str(node["threshold"]).split("||")]
            self.categories[len(self.nodes) - 1] = codes
        return len(self.nodes) - 1

    def category_tables(self, n_features: int) -> tuple[np.ndarray, np.ndarray]:
        """Per feature the number of category codes its splits use, and per
        categorical node which codes go left (plus a last, 0, for any other value);
        sets each node's start in that table."""
        size = np.zeros(n_features, dtype=np.int32)
        for node, codes in self.categories.items():
            feature = self.nodes[node][FEATURE]
            size[feature] = max(size[feature], max(codes) + 1)
        lut: list[np.ndarray] = []
        start = 0
        for node, codes in self.categories.items():
            goes_left = np.zeros(size[self.nodes[node][FEATURE]] + 1, dtype=np.bool_)
            goes_left[codes] = True
            self.nodes[node][CAT_START] = start
            lut.append(goes_left)
            start += len(goes_left)
        return size, np.concatenate([np.zeros(0, np.bool_), *lut])


def _count(node: dict[str, Any]) -> float:
    """Training rows that reached a node (LightGBM's data_count)."""
    return float(node["leaf_count"] if "leaf_value" in node else node["internal_count"])


def _expected_value(leaves: list[dict[str, Any]], total: float) -> float:
    """A tree's mean output over its training rows, summed as LightGBM sums it (in
    leaf index order)."""
    expected = 0.0
    for leaf in sorted(leaves, key=lambda node: int(node.get("leaf_index", 0))):
        expected += (float(leaf["leaf_count"]) / total) * float(leaf["leaf_value"])
    return expected


def parse_dump(dump: dict[str, Any]) -> TreeEnsemble:
    """A TreeEnsemble from ``Booster.dump_model()`` of a binary or regression model."""
    if dump.get("num_tree_per_iteration", 1) != 1:
        raise TreeModelError(
            "only single-output models (binary, regression) are supported"
        )
    builder = _Builder()
    trees = []
    for tree in dump["tree_info"]:
        structure = tree["tree_structure"]
        trees.append(builder.add_tree(structure))
    n_features = int(dump["max_feature_idx"]) + 1
    cat_size, cat_lut = builder.category_tables(n_features)
    packed_nodes, packed_trees = _packed(builder.nodes, 8), _packed(trees, 4)
    leaf_masks, mask_start = _leaf_masks(packed_nodes, packed_trees)
    code_start, size = _code_starts(packed_trees, np.ones(len(trees), np.int64))
    code_value = np.zeros(size)
    leaf_value = np.asarray(builder.leaf_value, dtype=np.float64)
    _fill_code_values(packed_trees, packed_nodes, leaf_value, code_start, code_value)
    return TreeEnsemble(
        n_features=n_features,
        trees=_packed(trees, 4),
        nodes=_packed(builder.nodes, 8),
        threshold=np.asarray(builder.threshold, dtype=np.float64),
        cat_size=cat_size,
        cat_lut=cat_lut,
        leaf_value=np.asarray(builder.leaf_value, dtype=np.float64),
        leaves=_packed(builder.leaves, 2),
        unique_feature=np.asarray(builder.unique_feature, dtype=np.int32),
        unique_zero=np.asarray(builder.unique_zero, dtype=np.float64),
        left_share=np.asarray(builder.left_share, dtype=np.float64),
        leaf_masks=leaf_masks,
        mask_start=mask_start,
        code_start=code_start,
        code_value=code_value,
        expected_value=builder.expected_value,
    )


def _code_starts(trees: np.ndarray, width: np.ndarray) -> tuple[np.ndarray, int]:
    """Where each tree's code table starts (``width`` entries per code), -1 for a
    tree with more than MAX_CODE_SPLITS splits; and the size of all of them."""
    starts = np.full(len(trees), -1, dtype=np.int64)
    size = 0
    for tree, splits in enumerate(trees[:, N_NODES].tolist()):
        if splits <= MAX_CODE_SPLITS:
            starts[tree] = size
            size += (1 << splits) * int(width[tree])
    return starts, size


def _leaf_masks(nodes: np.ndarray, trees: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per node, its tree's leaves outside its left subtree, as 64-bit words; and
    where each tree's masks start."""
    masks: list[int] = []
    starts = []
    for node_start, n_nodes, leaf_start, n_leaves in trees.tolist():
        starts.append(len(masks))
        tree = nodes[node_start : node_start + n_nodes, [LEFT, RIGHT]].tolist()
        tree = [[c - node_start if c >= 0 else c + leaf_start for c in n] for n in tree]
        masks += _tree_masks(tree, n_leaves)
    return np.asarray(masks, dtype=np.uint64), np.asarray(starts, dtype=np.int64)


def _tree_masks(children: list[list[int]], n_leaves: int) -> list[int]:
    """The masks of one tree, given each node's (left, right) children numbered
    within the tree (a leaf ``~i``)."""
    words = (n_leaves + 63) // 64
    under = [0] * len(children)  # leaves below each node, as one Python integer

    def below(child: int) -> int:
        return 1 << ~child if child < 0 else under[child]

    for j in reversed(range(len(children))):  # children come after their parents
        under[j] = below(children[j][0]) | below(children[j][1])
    everything = (1 << n_leaves) - 1
    masks = []
    for left, _ in children:
        kept = everything & ~below(left)
        masks += [(kept >> (64 * w)) & (2**64 - 1) for w in range(words)]
    return masks


def _packed(rows: Sequence[Sequence[int]], width: int) -> np.ndarray:
    return np.asarray(rows, dtype=np.int32).reshape(-1, width)


_COMPILED: weakref.WeakKeyDictionary[Any, dict[int, TreeEnsemble]] = (
    weakref.WeakKeyDictionary()
)


def compile_booster(booster: Any, num_iteration: int | None = None) -> TreeEnsemble:
    """The TreeEnsemble of a LightGBM Booster's first ``num_iteration`` trees (all
    when None or <= 0), parsed once per booster and kept while the booster lives."""
    key = max(int(num_iteration or 0), 0)
    per_booster = _COMPILED.setdefault(booster, {})
    if key not in per_booster:
        per_booster[key] = parse_dump(booster.dump_model(num_iteration=key or None))
    return per_booster[key]


# --- inputs ----------------------------------------------------------------------


def feature_matrix(matrix: pd.DataFrame) -> np.ndarray:
    """A model matrix as LightGBM reads it: float64, categorical columns as their
    codes, missing (code -1) as NaN."""
    rows = np.empty((len(matrix), matrix.shape[1]), dtype=np.float64)
    for position, (_, values) in enumerate(matrix.items()):
        if isinstance(values.dtype, pd.CategoricalDtype):
            codes = values.cat.codes.to_numpy()
            rows[:, position] = np.where(codes < 0, np.nan, codes)
        else:
            rows[:, position] = values.to_numpy(dtype=np.float64, na_value=np.nan)
    return rows


def _rows(ensemble: TreeEnsemble, rows: np.ndarray) -> np.ndarray:
    rows = np.ascontiguousarray(rows, dtype=np.float64)
    if rows.ndim != 2 or rows.shape[1] != ensemble.n_features:
        raise TreeModelError(
            f"expected a 2-d matrix with {ensemble.n_features} feature columns, "
            f"got shape {rows.shape}"
        )
    return rows


# --- tables ------------------------------------------------------------------------


def leaf_tables(ensemble: TreeEnsemble, groups: np.ndarray) -> LeafTables:
    """The pattern tables of every leaf for an output grouping of the features
    (``groups[feature]`` is its output column), built once per grouping."""
    key = tuple(int(g) for g in groups)
    if key not in ensemble.tables:
        ensemble.tables[key] = _build_tables(ensemble, np.asarray(groups, np.int32))
    return ensemble.tables[key]


def _build_tables(ensemble: TreeEnsemble, groups: np.ndarray) -> LeafTables:
    outputs: list[tuple[int, int]] = []
    out_group: list[int] = []
    unique_out: list[int] = []
    table_start: list[int] = []
    size = 0
    for first, count in ensemble.leaves:
        features = ensemble.unique_feature[first : first + count]
        distinct = list(dict.fromkeys(int(groups[f]) for f in features))
        outputs.append((len(out_group), len(distinct)))
        out_group += distinct
        unique_out += [distinct.index(int(groups[f])) for f in features]
        tabulated = count <= MAX_TABLE_DEPTH
        table_start.append(size if tabulated else -1)
        size += (1 << count) * len(distinct) if tabulated else 0
    tree_groups, widths, groups_start = _tree_groups(ensemble, outputs, out_group)
    code_start, code_size = _code_starts(ensemble.trees, widths)
    tables = LeafTables(
        outputs=_packed(outputs, 2),
        out_group=np.asarray(out_group, np.int32),
        unique_out=np.asarray(unique_out, np.int32),
        table_start=np.asarray(table_start, np.int64),
        table=np.zeros(size),
        tree_codes=np.column_stack([code_start, widths, groups_start]),
        tree_groups=tree_groups,
        tree_table=np.zeros(code_size),
    )
    _fill_tables(
        ensemble.leaf_value,
        ensemble.leaves,
        ensemble.unique_zero,
        tables.outputs,
        tables.unique_out,
        tables.table_start,
        tables.table,
    )
    _fill_tree_tables(ensemble, tables)
    return tables


def _tree_groups(
    ensemble: TreeEnsemble, outputs: list[tuple[int, int]], out_group: list[int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The groups each tree's leaves feed (ascending, all trees in one array), how
    many per tree, and where each tree's start."""
    flat: list[int] = []
    widths, starts = [], []
    for _, _, first_leaf, n_leaves in ensemble.trees.tolist():
        fed = {
            group
            for leaf in range(first_leaf, first_leaf + n_leaves)
            for group in out_group[outputs[leaf][0] : sum(outputs[leaf])]
        }
        starts.append(len(flat))
        widths.append(len(fed))
        flat += sorted(fed)
    return (
        np.asarray(flat, np.int32),
        np.asarray(widths, np.int64),
        np.asarray(starts, np.int64),
    )


def _fill_tree_tables(
    ensemble: TreeEnsemble, tables: LeafTables, leaf_mixed: np.ndarray | None = None
) -> None:
    """Every code-tabulated tree's contributions per group, for each code (a leaf's
    ``leaf_mixed`` bits following with their zero shares)."""
    _fill_tree_kernel(
        ensemble.trees,
        ensemble.nodes,
        ensemble.leaf_value,
        ensemble.leaves,
        ensemble.unique_zero,
        np.zeros(len(ensemble.leaf_value), np.int64)
        if leaf_mixed is None
        else leaf_mixed,
        tables.outputs,
        tables.out_group,
        tables.unique_out,
        tables.table_start,
        tables.table,
        tables.tree_codes,
        tables.tree_groups,
        tables.tree_table,
    )


# --- collapsed trees for a set of absent features -----------------------------------


def collapse(ensemble: TreeEnsemble, absent: np.ndarray) -> Collapsed:
    """The collapsed trees (:class:`Collapsed`) of rows lacking the features
    ``absent`` flags, built once per set and kept (the MAX_COLLAPSED most recently
    used sets)."""
    flags = np.asarray(absent, dtype=np.bool_)
    key, cache = flags.tobytes(), ensemble.collapsed
    found = cache.pop(key, None)
    if found is None:
        found = _collapse(ensemble, flags)
        while len(cache) >= MAX_COLLAPSED:
            del cache[next(iter(cache))]
    cache[key] = found
    return found


def _collapse(ensemble: TreeEnsemble, flags: np.ndarray) -> Collapsed:
    nodes = ensemble.nodes
    node_skip = flags[nodes[:, FEATURE]]
    tree_of_node = np.repeat(np.arange(ensemble.n_trees), ensemble.trees[:, N_NODES])
    tree_mixed = np.zeros(ensemble.n_trees, dtype=np.bool_)
    tree_mixed[tree_of_node[node_skip]] = True
    leaf_mixed = np.zeros(len(ensemble.leaf_value), dtype=np.int64)
    mixed_value = ensemble.leaf_value.copy()
    _collapse_leaves(
        ensemble.leaves,
        ensemble.unique_feature,
        ensemble.unique_zero,
        flags,
        leaf_mixed,
        mixed_value,
    )
    code_value = ensemble.code_value.copy()
    _fill_mixed_codes(
        ensemble.trees,
        nodes,
        ensemble.left_share,
        node_skip,
        tree_mixed,
        ensemble.leaf_value,
        ensemble.code_start,
        code_value,
    )
    return Collapsed(
        absent=flags.copy(),
        node_skip=node_skip,
        tree_mixed=tree_mixed,
        leaf_mixed=leaf_mixed,
        mixed_value=mixed_value,
        code_value=code_value,
    )


def collapsed_tables(
    ensemble: TreeEnsemble, collapsed: Collapsed, groups: np.ndarray
) -> LeafTables:
    """The pattern tables of a grouping (:func:`leaf_tables`) for rows lacking the
    collapsed set: each leaf with absent path features mixed over their bits, the
    code tables summed again from those; built once per set and grouping."""
    key = tuple(int(g) for g in groups)
    if key not in collapsed.tables:
        tables = leaf_tables(ensemble, groups)
        if collapsed.leaf_mixed.any():
            table = tables.table.copy()
            _fill_mixed_tables(
                ensemble.leaf_value,
                ensemble.leaves,
                ensemble.unique_zero,
                tables.outputs,
                tables.unique_out,
                tables.table_start,
                collapsed.leaf_mixed,
                table,
            )
            tables = replace(
                tables, table=table, tree_table=np.zeros_like(tables.tree_table)
            )
            _fill_tree_tables(ensemble, tables, collapsed.leaf_mixed)
        collapsed.tables[key] = tables
    return collapsed.tables[key]


def _absent_sets(
    rows: np.ndarray, mask: np.ndarray, leads: np.ndarray | None = None
) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """The rows (those at ``leads``, default all) by the set of flagged features
    they lack: per set its flags (one per feature) and its rows' positions among
    them (None: every row)."""
    nothing = np.zeros_like(mask)
    if not mask.any():
        return [(nothing, None)]
    columns = np.flatnonzero(mask)
    if len(columns) <= 64:  # each row's set as the bits of one integer, in one pass
        every = np.arange(len(rows)) if leads is None else leads
        keys = _lack_keys(rows, every.astype(np.int64), columns.astype(np.int64))
        if (keys == keys[0]).all():  # one set (a job's usual case)
            nothing[columns[_key_bits(int(keys[0]), len(columns))]] = True
            return [(nothing, None)]
        codes = np.asarray(pd.factorize(keys)[0], dtype=np.int64)
        order = np.argsort(codes, kind="stable")
        bounds = np.cumsum(np.bincount(codes))[:-1]
        sets: list[tuple[np.ndarray, np.ndarray | None]] = []
        for positions in np.split(order, bounds):
            flags = np.zeros_like(mask)
            key = int(keys[positions[0]])
            flags[columns[_key_bits(key, len(columns))]] = True
            sets.append((flags, positions))
        return sets
    lacks = np.isnan((rows if leads is None else rows[leads])[:, columns])
    if not lacks.any() or (lacks == lacks[0]).all():  # one set
        nothing[columns[lacks[0]]] = True
        return [(nothing, None)]
    packed = np.packbits(lacks, axis=1)
    keys = np.ascontiguousarray(packed).view(np.dtype((np.void, packed.shape[1])))
    _, first, inverse = np.unique(keys.ravel(), return_index=True, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.cumsum(np.bincount(inverse))[:-1]
    sets = []
    for row, positions in zip(first.tolist(), np.split(order, bounds), strict=True):
        flags = np.zeros_like(mask)
        flags[columns[lacks[row]]] = True
        sets.append((flags, positions))
    return sets


def _key_bits(key: int, n: int) -> np.ndarray:
    """The positions of the set bits of ``key`` among its lowest ``n``."""
    return np.flatnonzero([(key >> bit) & 1 for bit in range(n)])


def _plan(
    ensemble: TreeEnsemble, rows: np.ndarray, mask: np.ndarray
) -> tuple[list[tuple[Collapsed, np.ndarray | None]], np.ndarray]:
    """Which rows take which collapsed trees (positions, None for every row), and
    which rows, of sets too rare to collapse, take the per-row walk."""
    plan: list[tuple[Collapsed, np.ndarray | None]] = []
    walked = [np.zeros(0, dtype=np.int64)]
    for flags, positions in _absent_sets(rows, mask):
        n = len(rows) if positions is None else len(positions)
        if (
            n < MIN_COLLAPSE_ROWS
            and flags.any()
            and flags.tobytes() not in ensemble.collapsed
        ):
            walked.append(np.arange(n) if positions is None else positions)
        else:
            plan.append((collapse(ensemble, flags), positions))
    return plan, np.concatenate(walked)


# --- the entry points ---------------------------------------------------------------


def _absent_mask(ensemble: TreeEnsemble, absent: np.ndarray | None) -> np.ndarray:
    mask = np.zeros(ensemble.n_features, dtype=np.bool_)
    if absent is not None:
        given = np.asarray(absent, dtype=np.bool_)
        if given.shape != mask.shape:
            raise TreeModelError(
                f"absent needs one flag per feature ({ensemble.n_features}), "
                f"got shape {given.shape}"
            )
        mask = given
    return mask


def predict_margin(
    ensemble: TreeEnsemble,
    rows: np.ndarray,
    trees: np.ndarray | None = None,
    absent: np.ndarray | None = None,
    codes: np.ndarray | None = None,
) -> np.ndarray:
    """Raw scores, as ``Booster.predict(raw_score=True)`` gives them: the same leaves,
    added tree by tree in the same order, so equal to the last bit. ``codes``: the
    rows' :func:`tree_codes`, if at hand: where every tree is tabulated by code,
    the scores are then read from them without deciding a split.

    With ``trees`` (ascending tree numbers, e.g. from :func:`trees_using`), only those
    trees' leaf values are summed: the part of the score a change to their features
    can move.

    ``absent`` flags features (one per column) whose missing value means "not known"
    where LightGBM has no rule for it (the feature was never missing in training, so
    LightGBM would read NaN as 0 or as an unseen category). A row missing such a
    feature is scored as the expectation over the training rows: at each split on it,
    both branches, weighted by the share of training rows that took each (the
    "feature not present" of path-dependent TreeSHAP).
    """
    rows = _rows(ensemble, rows)
    out = np.zeros(len(rows))
    chosen = slice(None) if trees is None else np.asarray(trees, dtype=np.int64)
    packed = ensemble.trees[chosen]
    if len(rows) and len(packed):
        mask = _absent_mask(ensemble, absent)
        plan, walked = _plan(ensemble, rows, mask)
        if codes is not None and (ensemble.code_start[chosen] >= 0).all():
            codes = _codes(ensemble, rows, codes)
            picked = np.arange(ensemble.n_trees)[chosen].astype(np.int64)
            every = np.arange(len(rows), dtype=np.int64)
            for collapsed, positions in plan:
                _code_margin_kernel(
                    codes,
                    every if positions is None else positions.astype(np.int64),
                    picked,
                    ensemble.code_start,
                    collapsed.code_value,
                    out,
                )
            plan = []
        for collapsed, positions in plan:
            if positions is None:
                _margins(ensemble, rows, chosen, collapsed, out)
            else:
                out[positions] = _margins(
                    ensemble,
                    rows[positions],
                    chosen,
                    collapsed,
                    np.zeros(len(positions)),
                )
        if len(walked):
            out[walked] = _absent_scores(ensemble, rows[walked], packed, mask)[0]
    return out


def _margins(
    ensemble: TreeEnsemble,
    rows: np.ndarray,
    chosen: slice | np.ndarray,
    collapsed: Collapsed,
    out: np.ndarray,
) -> np.ndarray:
    """``out`` holding the raw scores over the ``chosen`` trees of rows lacking the
    collapsed set (exactly the absent features it flags)."""
    _margin_kernel(
        rows,
        ensemble.trees[chosen],
        ensemble.nodes,
        ensemble.threshold,
        ensemble.cat_size,
        ensemble.cat_lut,
        ensemble.leaf_value,
        ensemble.leaf_masks,
        ensemble.mask_start[chosen],
        ensemble.code_start[chosen],
        collapsed.code_value,
        collapsed.node_skip,
        collapsed.tree_mixed[chosen],
        collapsed.mixed_value,
        out,
    )
    return out


def _absent_scores(
    ensemble: TreeEnsemble,
    rows: np.ndarray,
    trees: np.ndarray,
    mask: np.ndarray,
    tables: LeafTables | None = None,
    n_groups: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Margins of rows missing features the mask flags (see :func:`_absent_mask`)
    over ``trees``, and with ``tables`` their contributions to the ``n_groups``
    groups (the expected value left out)."""
    margin = np.zeros(len(rows))
    phi = np.zeros((len(rows), max(n_groups, 1)))
    empty_i, empty_f = np.zeros(1, np.int64), np.zeros(1)
    _absent_kernel(
        np.ascontiguousarray(rows),
        mask,
        trees,
        ensemble.nodes,
        ensemble.threshold,
        ensemble.cat_size,
        ensemble.cat_lut,
        ensemble.left_share,
        ensemble.leaf_value,
        ensemble.leaves,
        ensemble.unique_feature,
        ensemble.unique_zero,
        tables.outputs if tables else np.zeros((1, 2), np.int64),
        tables.out_group if tables else np.zeros(1, np.int32),
        tables.unique_out if tables else np.zeros(1, np.int32),
        tables.table_start if tables else empty_i,
        tables.table if tables else empty_f,
        tables is not None,
        MAX_MIXED,
        margin,
        phi,
    )
    return margin, phi


def trees_using(ensemble: TreeEnsemble, features: Sequence[int]) -> np.ndarray:
    """The trees (ascending) with a split on any of the given feature columns: the
    only trees whose leaf a row reaches can change when those features change.

    >>> tree = {"tree_structure": {
    ...     "split_feature": 1, "threshold": 0.5, "decision_type": "<=",
    ...     "default_left": True, "missing_type": "NaN", "internal_count": 2,
    ...     "left_child": {"leaf_value": 1.0, "leaf_count": 1},
    ...     "right_child": {"leaf_value": 3.0, "leaf_count": 1}}}
    >>> ensemble = parse_dump({"tree_info": [tree, tree], "max_feature_idx": 1})
    >>> trees_using(ensemble, [1]).tolist(), trees_using(ensemble, [0]).tolist()
    ([0, 1], [])
    """
    tree_of_node = np.repeat(np.arange(ensemble.n_trees), ensemble.trees[:, N_NODES])
    splits_on = np.isin(ensemble.nodes[:, FEATURE], np.asarray(features, np.int32))
    return np.unique(tree_of_node[splits_on])


def tree_codes(ensemble: TreeEnsemble, rows: np.ndarray) -> np.ndarray:
    """Per row and tree, the row's *code* in that tree: bit j set when the row takes
    the left branch of the tree's split j (trees tabulated by code only, see
    :data:`MAX_CODE_SPLITS`; 0 for the others). Decided once, a chunk's codes serve
    its contributions (:func:`contributions`) and its answered scores
    (:func:`answer_margins`); a missing value takes the way LightGBM sends it (an
    absent feature's splits are mixed by the collapsed code values instead, which
    read no bit of theirs).

    >>> tree = {"tree_structure": {
    ...     "split_feature": 0, "threshold": 0.5, "decision_type": "<=",
    ...     "default_left": True, "missing_type": "NaN", "internal_count": 2,
    ...     "left_child": {"leaf_value": 1.0, "leaf_count": 1},
    ...     "right_child": {"leaf_value": 3.0, "leaf_count": 1}}}
    >>> ensemble = parse_dump({"tree_info": [tree], "max_feature_idx": 0})
    >>> tree_codes(ensemble, np.array([[0.0], [1.0], [np.nan]])).ravel().tolist()
    [1, 0, 1]
    """
    rows = _rows(ensemble, rows)
    codes = np.zeros((len(rows), ensemble.n_trees), dtype=np.uint8)
    if len(rows) and ensemble.n_trees:
        _codes_kernel(
            rows,
            ensemble.trees,
            ensemble.nodes,
            ensemble.threshold,
            ensemble.cat_size,
            ensemble.cat_lut,
            ensemble.code_start,
            codes,
        )
    return codes


def _codes(
    ensemble: TreeEnsemble, rows: np.ndarray, codes: np.ndarray | None
) -> np.ndarray:
    """``codes`` checked against ``rows`` (:func:`tree_codes` of them when None)."""
    if codes is None:
        return tree_codes(ensemble, rows)
    if codes.shape != (len(rows), ensemble.n_trees) or codes.dtype != np.uint8:
        raise TreeModelError(
            f"codes must be tree_codes of the rows: ({len(rows)}, "
            f"{ensemble.n_trees}) uint8, got {codes.shape} {codes.dtype}"
        )
    return codes


#: An answer as the model's rows take it: the value of each feature column it sets.
Answered = Mapping[int, float]


def answer_margins(
    ensemble: TreeEnsemble,
    rows: np.ndarray,
    now: np.ndarray,
    answers: Sequence[Answered],
    absent: np.ndarray | None = None,
    codes: np.ndarray | None = None,
    leads: np.ndarray | None = None,
) -> np.ndarray:
    """(leads, answers) raw scores of the rows at ``leads`` (default all) after each
    answer (``{feature column: value}``, the values the row then takes), given the
    rows' raw scores ``now`` (:func:`predict_margin` with the same ``absent``) and,
    if at hand, their ``codes`` (:func:`tree_codes`); each column equal, to
    rounding, to predict_margin of the answered rows.

    Only the trees splitting on an answered feature can change, and an answer is
    the same for every row: in a tree tabulated by code it sets the bits of the
    splits on its features the same way for all, so the answered score is
    ``now``, minus each such tree's value at the row's code (:func:`tree_codes`),
    plus its value at the code with those bits replaced: one table lookup per
    tree and answer, no split decided again. Rows lacking absent features read the
    collapsed code values of their set before the answer and of the set the
    answer leaves (an answered feature is known). Rows of a set too rare to
    collapse, and trees too large to tabulate by code, are scored again as rows.

    >>> tree = {"tree_structure": {
    ...     "split_feature": 0, "threshold": 0.5, "decision_type": "<=",
    ...     "default_left": True, "missing_type": "NaN", "internal_count": 4,
    ...     "left_child": {"leaf_value": 1.0, "leaf_count": 1},
    ...     "right_child": {"leaf_value": 3.0, "leaf_count": 3}}}
    >>> ensemble = parse_dump({"tree_info": [tree], "max_feature_idx": 0})
    >>> rows = np.array([[0.0], [np.nan]])
    >>> now = predict_margin(ensemble, rows, absent=np.array([True]))
    >>> answer_margins(ensemble, rows, now, [{0: 1.0}], np.array([True])).tolist()
    [[3.0], [3.0]]
    """
    rows = _rows(ensemble, rows)
    now = np.asarray(now, dtype=np.float64)
    leads = np.arange(len(rows)) if leads is None else np.asarray(leads, np.int64)
    out = np.empty((len(leads), len(answers)))
    if not len(leads) or not len(answers):
        return out
    codes = _codes(ensemble, rows, codes)
    changed = sorted({int(f) for answer in answers for f in answer})
    trees = trees_using(ensemble, changed)
    coded = trees[ensemble.code_start[trees] >= 0]
    other = trees[ensemble.code_start[trees] < 0]
    keep, bits = _answer_bits(ensemble, coded, answers)
    mask = _absent_mask(ensemble, absent)
    rare = [np.zeros(0, dtype=np.int64)]
    for flags, positions in _absent_sets(rows, mask, leads):
        at = np.arange(len(leads)) if positions is None else positions
        if (
            len(at) < MIN_COLLAPSE_ROWS
            and flags.any()
            and flags.tobytes() not in ensemble.collapsed
        ):
            rare.append(at)
            continue
        before = collapse(ensemble, flags).code_value
        after = np.stack(
            [
                collapse(ensemble, _answered_flags(flags, mask, answer)).code_value
                for answer in answers
            ]
        )
        _answer_kernel(
            codes,
            leads,
            np.ascontiguousarray(at, dtype=np.int64),
            coded,
            ensemble.code_start,
            before,
            after,
            keep,
            bits,
            now,
            out,
        )
    if len(other):  # trees too large to tabulate by code
        out += _scored_answers(
            ensemble, rows[leads], np.zeros(len(leads)), answers, other, mask
        )
    walked = np.concatenate(rare)
    if len(walked):
        out[walked] = _scored_answers(
            ensemble, rows[leads[walked]], now[leads[walked]], answers, trees, mask
        )
    return out


def _answered_flags(
    flags: np.ndarray, mask: np.ndarray, answer: Answered
) -> np.ndarray:
    """The absent set of a row lacking ``flags`` once it takes ``answer``."""
    after = flags.copy()
    for feature, value in answer.items():
        after[feature] = bool(mask[feature]) and bool(np.isnan(value))
    return after


def _answer_bits(
    ensemble: TreeEnsemble, trees: np.ndarray, answers: Sequence[Answered]
) -> tuple[np.ndarray, np.ndarray]:
    """Per answer and code-tabulated tree (``trees``), the bits of a row's code
    an answer leaves (``keep``: the splits on other features) and those it sets
    (``bits``: its values' ways at the splits on its features)."""
    n_splits = ensemble.trees[:, N_NODES]
    tree_of_node = np.repeat(np.arange(ensemble.n_trees), n_splits)
    split = np.arange(len(ensemble.nodes)) - np.repeat(
        ensemble.trees[:, NODE_START], n_splits
    )
    keep = np.zeros((len(answers), len(trees)), dtype=np.int64)
    bits = np.zeros((len(answers), len(trees)), dtype=np.int64)
    answered = np.full((len(answers), ensemble.n_features), np.nan)
    for a, answer in enumerate(answers):
        for feature, value in answer.items():
            answered[a, feature] = value
    codes = tree_codes(ensemble, answered).astype(np.int64)  # each answer's ways
    for a, answer in enumerate(answers):
        features = np.fromiter(answer, dtype=np.int64, count=len(answer))
        on = np.isin(ensemble.nodes[:, FEATURE], features)
        changed = np.zeros(ensemble.n_trees, dtype=np.int64)
        np.add.at(changed, tree_of_node[on], np.int64(1) << split[on])
        keep[a] = ~changed[trees] & 0xFF
        bits[a] = codes[a, trees] & changed[trees]
    return keep, bits


def _scored_answers(
    ensemble: TreeEnsemble,
    rows: np.ndarray,
    now: np.ndarray,
    answers: Sequence[Answered],
    trees: np.ndarray,
    mask: np.ndarray,
) -> np.ndarray:
    """:func:`answer_margins` by scoring the answered rows again over ``trees``."""
    old = now - predict_margin(ensemble, rows, trees, mask)
    changed = sorted({int(f) for answer in answers for f in answer})
    answered, results = rows.copy(), []
    for answer in answers:
        for feature, value in answer.items():
            answered[:, feature] = value
        results.append(old + predict_margin(ensemble, answered, trees, mask))
        answered[:, changed] = rows[:, changed]  # back for the next answer
    return np.column_stack(results)


def contributions(
    ensemble: TreeEnsemble,
    rows: np.ndarray,
    groups: np.ndarray | None = None,
    n_groups: int | None = None,
    absent: np.ndarray | None = None,
    codes: np.ndarray | None = None,
) -> np.ndarray:
    """Exact path-dependent TreeSHAP values, as ``predict(pred_contrib=True)``: one
    column per feature, or per group when ``groups[feature]`` numbers the groups
    0..n_groups-1; the expected value last. Each row sums to its raw score.

    A row missing an ``absent`` feature (see :func:`predict_margin`) is explained as
    the game in which that feature is never present: it contributes 0, the others
    share the rest, and the row still sums to its margin from predict_margin.
    ``codes``: the rows' :func:`tree_codes`, if at hand (else decided here)."""
    rows = _rows(ensemble, rows)
    if codes is not None:
        codes = _codes(ensemble, rows, codes)
    if groups is None:
        groups = np.arange(ensemble.n_features, dtype=np.int32)
    groups = np.asarray(groups, dtype=np.int32)
    n_groups = int(groups.max(initial=-1)) + 1 if n_groups is None else n_groups
    if (
        groups.shape != (ensemble.n_features,)
        or not ((groups >= 0) & (groups < n_groups)).all()
    ):
        raise TreeModelError(
            f"groups needs one group number in 0..{n_groups - 1} per feature "
            f"({ensemble.n_features})"
        )
    out = np.zeros((len(rows), n_groups + 1))
    out[:, -1] = ensemble.expected_value
    if len(rows) and ensemble.n_trees:
        mask = _absent_mask(ensemble, absent)
        plan, walked = _plan(ensemble, rows, mask)
        for collapsed, positions in plan:
            tables = collapsed_tables(ensemble, collapsed, groups)
            if positions is None:
                _contributions(ensemble, rows, tables, collapsed, out, codes)
            else:
                part = np.zeros((len(positions), n_groups + 1))
                _contributions(
                    ensemble,
                    rows[positions],
                    tables,
                    collapsed,
                    part,
                    None if codes is None else codes[positions],
                )
                out[positions, :-1] = part[:, :-1]
        if len(walked):
            phi = _absent_scores(
                ensemble,
                rows[walked],
                ensemble.trees,
                mask,
                leaf_tables(ensemble, groups),
                n_groups,
            )[1]
            out[walked, :-1] = phi[:, :n_groups]
    return out


def _contributions(
    ensemble: TreeEnsemble,
    rows: np.ndarray,
    tables: LeafTables,
    collapsed: Collapsed,
    out: np.ndarray,
    codes: np.ndarray | None = None,
) -> None:
    """Add to ``out`` the grouped contributions of rows lacking the collapsed set,
    with that set's tables (:func:`collapsed_tables`); ``codes``: the rows'
    :func:`tree_codes`, or None to decide the splits here."""
    _shap_kernel(
        rows,
        ensemble.trees,
        ensemble.nodes,
        ensemble.threshold,
        ensemble.cat_size,
        ensemble.cat_lut,
        ensemble.leaf_value,
        ensemble.leaves,
        ensemble.unique_zero,
        collapsed.leaf_mixed,
        tables.outputs,
        tables.out_group,
        tables.unique_out,
        tables.table_start,
        tables.table,
        tables.tree_codes,
        tables.tree_groups,
        tables.tree_table,
        np.zeros((1, 1), np.uint8) if codes is None else codes,
        codes is not None,
        out,
    )


# --- compiled kernels (numba ignores the annotations; mypy reads them) -------------


@jit()
def _shapley_weights(n_unique: int, weights: np.ndarray) -> None:
    """weights[m] = m! (d - m - 1)! / d! for m = 0 .. d-1 (d = n_unique)."""
    for m in range(n_unique):
        weight = 1.0 / n_unique
        for i in range(1, m + 1):  # 1 / (d C(d-1, m)), one factor at a time
            weight *= i / (n_unique - i)
        weights[m] = weight


@jit()
def _leaf_phi(
    value: float,
    n_unique: int,
    pattern: int,
    zero: np.ndarray,
    weights: np.ndarray,
    poly: np.ndarray,
    phi: np.ndarray,
) -> None:
    """phi[k] of each distinct path feature k of one leaf, for one row's pattern.

    poly[m] is the coefficient of t^m in prod_{j != k} (z_j + o_j t): the sum, over
    the subsets S of m followed features, of prod_{j not in S} z_j.
    """
    for k in range(n_unique):
        poly[0] = 1.0
        size = 1
        for j in range(n_unique):
            if j == k:
                continue
            if (pattern >> j) & 1:  # multiply by (z_j + t)
                poly[size] = 0.0
                for m in range(size, 0, -1):
                    poly[m] = poly[m] * zero[j] + poly[m - 1]
                poly[0] *= zero[j]
                size += 1
            else:  # multiply by z_j
                for m in range(size):
                    poly[m] *= zero[j]
        total = 0.0
        for m in range(size):
            total += poly[m] * weights[m]
        one = 1.0 if (pattern >> k) & 1 else 0.0
        phi[k] = value * (one - zero[k]) * total


@jit()
def _leaf_scratch(leaves: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weights, polynomial and phi buffers for the leaf with the most distinct
    path features (at least one entry each)."""
    size = 1
    for leaf in range(leaves.shape[0]):
        size = max(size, leaves[leaf, N_UNIQUE])
    return np.empty(size), np.empty(size), np.empty(size)


@jit()
def _fill_tables(
    leaf_value: np.ndarray,
    leaves: np.ndarray,
    unique_zero: np.ndarray,
    outputs: np.ndarray,
    unique_out: np.ndarray,
    table_start: np.ndarray,
    table: np.ndarray,
) -> None:
    """Every tabulated leaf's grouped contributions, for each of its patterns."""
    weights, poly, phi = _leaf_scratch(leaves)
    for leaf in range(leaves.shape[0]):
        first, d = leaves[leaf, UNIQUE_START], leaves[leaf, N_UNIQUE]
        if table_start[leaf] < 0 or d == 0:
            continue
        _shapley_weights(d, weights)
        zero = unique_zero[first : first + d]
        for pattern in range(1 << d):
            _leaf_phi(leaf_value[leaf], d, pattern, zero, weights, poly, phi)
            base = table_start[leaf] + pattern * outputs[leaf, N_OUT]
            for k in range(d):
                table[base + unique_out[first + k]] += phi[k]


@jit()
def _fill_tree_kernel(
    trees: np.ndarray,
    nodes: np.ndarray,
    leaf_value: np.ndarray,
    leaves: np.ndarray,
    unique_zero: np.ndarray,
    leaf_mixed: np.ndarray,
    outputs: np.ndarray,
    out_group: np.ndarray,
    unique_out: np.ndarray,
    table_start: np.ndarray,
    table: np.ndarray,
    tree_codes: np.ndarray,
    tree_groups: np.ndarray,
    tree_table: np.ndarray,
) -> None:
    """For each code of a code-tabulated tree, as the kernel would for a row with
    that code: carry the strayed bits down, then add every leaf's contribution (its
    table entry, or computed) at its group's place among the tree's groups."""
    max_nodes, max_leaves = _tree_sizes(trees)
    strays = np.zeros((max_nodes + max_leaves, 1), dtype=np.int64)  # one "row"
    left = np.empty(1, dtype=np.bool_)
    weights, poly, phi = _leaf_scratch(leaves)
    follows = np.empty(weights.shape[0])
    place = np.full(max(out_group.max() + 1 if out_group.size else 1, 1), -1)
    for tree in range(trees.shape[0]):
        start, width, groups_start = (
            tree_codes[tree, 0],
            tree_codes[tree, 1],
            tree_codes[tree, 2],
        )
        if start < 0:
            continue
        for s in range(width):
            place[tree_groups[groups_start + s]] = s
        first_node, first_leaf = trees[tree, NODE_START], trees[tree, LEAF_START]
        for code in range(1 << trees[tree, N_NODES]):
            strays[0, 0] = 0
            for j in range(trees[tree, N_NODES]):
                left[0] = (code >> j) & 1 == 1
                _carry_strays(j, first_node, first_leaf, max_nodes, nodes, left, strays)
            base = start + code * width
            for i in range(trees[tree, N_LEAVES]):
                leaf = first_leaf + i
                d = leaves[leaf, N_UNIQUE]
                if d == 0:
                    continue
                pattern = ((np.int64(1) << d) - 1) & ~strays[max_nodes + i, 0]
                out_start, n_out = outputs[leaf, OUT_START], outputs[leaf, N_OUT]
                if table_start[leaf] >= 0:
                    entry = table_start[leaf] + pattern * n_out
                    for s in range(n_out):
                        group = out_group[out_start + s]
                        tree_table[base + place[group]] += table[entry + s]
                    continue
                first = leaves[leaf, UNIQUE_START]
                _shapley_weights(d, weights)
                zero = unique_zero[first : first + d]
                _any_leaf_phi(
                    leaf_value[leaf],
                    d,
                    pattern,
                    leaf_mixed[leaf],
                    zero,
                    (weights, poly, phi, follows),
                )
                for k in range(d):
                    group = out_group[out_start + unique_out[first + k]]
                    tree_table[base + place[group]] += phi[k]


@jit()
def _any_leaf_phi(
    value: float,
    n_unique: int,
    pattern: int,
    mixed: int,
    zero: np.ndarray,
    scratch: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> None:
    """:func:`_leaf_phi` into ``scratch[2]``, the path features of the ``mixed``
    bits followed with their zero shares (:func:`_mixed_leaf_phi`) whatever their
    pattern bits. ``scratch``: weights (set), polynomial, phi and follows buffers."""
    weights, poly, phi, follows = scratch
    if mixed == 0:
        _leaf_phi(value, n_unique, pattern, zero, weights, poly, phi)
        return
    for k in range(n_unique):
        follows[k] = zero[k] if (mixed >> k) & 1 else float((pattern >> k) & 1)
    _mixed_leaf_phi(value, n_unique, follows, zero, weights, poly, phi)


@jit()
def _collapse_leaves(
    leaves: np.ndarray,
    unique_feature: np.ndarray,
    unique_zero: np.ndarray,
    absent: np.ndarray,
    leaf_mixed: np.ndarray,
    mixed_value: np.ndarray,
) -> None:
    """Per leaf, the bits of its absent path features, and its value (given in
    ``mixed_value``) times their zero shares."""
    for leaf in range(leaves.shape[0]):
        first = leaves[leaf, UNIQUE_START]
        for k in range(leaves[leaf, N_UNIQUE]):
            if absent[unique_feature[first + k]]:
                leaf_mixed[leaf] |= np.int64(1) << k
                mixed_value[leaf] *= unique_zero[first + k]


@jit()
def _fill_mixed_codes(
    trees: np.ndarray,
    nodes: np.ndarray,
    left_share: np.ndarray,
    node_skip: np.ndarray,
    tree_mixed: np.ndarray,
    leaf_value: np.ndarray,
    code_start: np.ndarray,
    code_value: np.ndarray,
) -> None:
    """For each code of a mixed code-tabulated tree, its expected leaf value: the
    row takes the code's way at each split but the skipped ones (absent features),
    where it goes both ways weighted by the training rows each way took."""
    max_nodes, max_leaves = _tree_sizes(trees)
    stack = np.empty(max_nodes + max_leaves + 1, dtype=np.int64)
    reach = np.empty(max_nodes + max_leaves + 1)
    for tree in range(trees.shape[0]):
        if code_start[tree] < 0 or not tree_mixed[tree]:
            continue
        first_node = trees[tree, NODE_START]
        for code in range(1 << trees[tree, N_NODES]):
            total, top = 0.0, 1
            stack[0], reach[0] = first_node, 1.0
            while top > 0:
                top -= 1
                node, weight = stack[top], reach[top]
                if node < 0:
                    total += weight * leaf_value[~node]
                    continue
                left_child, right_child = nodes[node, LEFT], nodes[node, RIGHT]
                if node_skip[node]:
                    share = left_share[node]
                    stack[top], reach[top] = left_child, weight * share
                    stack[top + 1] = right_child
                    reach[top + 1] = weight * (1.0 - share)
                    top += 2
                    continue
                goes_left = (code >> (node - first_node)) & 1
                stack[top] = left_child if goes_left else right_child
                reach[top] = weight
                top += 1
            code_value[code_start[tree] + code] = total


@jit()
def _fill_mixed_tables(
    leaf_value: np.ndarray,
    leaves: np.ndarray,
    unique_zero: np.ndarray,
    outputs: np.ndarray,
    unique_out: np.ndarray,
    table_start: np.ndarray,
    leaf_mixed: np.ndarray,
    table: np.ndarray,
) -> None:
    """Every tabulated leaf with absent path features (``leaf_mixed`` bits): its
    grouped contributions for each pattern, those features followed with their zero
    shares (so an entry is the same whatever their bits)."""
    weights, poly, phi = _leaf_scratch(leaves)
    scratch = (weights, poly, phi, np.empty(weights.shape[0]))
    for leaf in range(leaves.shape[0]):
        mixed = leaf_mixed[leaf]
        if table_start[leaf] < 0 or mixed == 0:
            continue
        first, d = leaves[leaf, UNIQUE_START], leaves[leaf, N_UNIQUE]
        width = outputs[leaf, N_OUT]
        _shapley_weights(d, weights)
        zero = unique_zero[first : first + d]
        for pattern in range(1 << d):
            entry = table_start[leaf] + pattern * width
            kept = pattern & ~mixed
            if kept != pattern:  # the same entry as with the absent bits cleared
                source = table_start[leaf] + kept * width
                table[entry : entry + width] = table[source : source + width]
                continue
            table[entry : entry + width] = 0.0
            _any_leaf_phi(leaf_value[leaf], d, pattern, mixed, zero, scratch)
            for k in range(d):
                table[entry + unique_out[first + k]] += phi[k]


@jit()
def _block_columns(
    rows: np.ndarray, cat_size: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """A block of rows by column, and the category code of each categorical value
    (LightGBM's int cast; cat_size[f], which goes right everywhere, for NaN, negative
    and unknown codes)."""
    columns = np.ascontiguousarray(rows.T)
    codes = np.empty(columns.shape, dtype=np.int32)
    for f in range(columns.shape[0]):
        if cat_size[f] == 0:
            continue
        for r in range(columns.shape[1]):
            value = columns[f, r]
            known = value > -1.0 and value < cat_size[f]  # NaN fails both
            codes[f, r] = int(value) if known else cat_size[f]
    return columns, codes


@jit()
def _decide(
    node: int,
    columns: np.ndarray,
    codes: np.ndarray,
    nodes: np.ndarray,
    threshold: np.ndarray,
    cat_lut: np.ndarray,
    left: np.ndarray,
) -> None:
    """LightGBM's Tree::Decision for one node and a block of rows: left[r] is True
    when row r takes the left branch. Branch-free per row, so it vectorises."""
    kind, feature, limit = nodes[node, KIND], nodes[node, FEATURE], threshold[node]
    values = columns[feature]
    if kind == CATEGORICAL:
        lut = cat_lut[nodes[node, CAT_START] :]
        code = codes[feature]
        for r in range(values.shape[0]):
            left[r] = lut[code[r]]
    elif kind == 1:  # missing type Zero: zero (and NaN, read as 0) go the default way
        for r in range(values.shape[0]):
            zero = values[r] != values[r] or abs(values[r]) <= ZERO_THRESHOLD
            left[r] = nodes[node, NAN_LEFT] == 1 if zero else values[r] <= limit
    elif nodes[node, NAN_LEFT] == 1:  # NaN fails every comparison: here it goes left
        for r in range(values.shape[0]):
            left[r] = not values[r] > limit
    else:
        for r in range(values.shape[0]):
            left[r] = values[r] <= limit


@jit()
def _tree_sizes(trees: np.ndarray) -> tuple[int, int]:
    """Internal nodes and leaves of the largest tree (at least 1 each)."""
    max_nodes, max_leaves = 1, 1
    for tree in range(trees.shape[0]):
        max_nodes = max(max_nodes, trees[tree, N_NODES])
        max_leaves = max(max_leaves, trees[tree, N_LEAVES])
    return max_nodes, max_leaves


@jit()
def _child_position(
    child: int, first_node: int, first_leaf: int, max_nodes: int
) -> int:
    """Row of a child in a block's scratch: internal nodes first, then leaves."""
    if child >= 0:
        return child - first_node
    return max_nodes + ~child - first_leaf


@jit()
def _carry_strays(
    j: int,
    first_node: int,
    first_leaf: int,
    max_nodes: int,
    nodes: np.ndarray,
    left: np.ndarray,
    strays: np.ndarray,
) -> None:
    """Pass the strayed bits of the tree's split j (``strays[j, r]`` per row r) to
    its children, adding the split's feature bit on the side row r does not take."""
    node = first_node + j
    bit = np.int64(1) << nodes[node, SLOT]
    to_left = _child_position(nodes[node, LEFT], first_node, first_leaf, max_nodes)
    to_right = _child_position(nodes[node, RIGHT], first_node, first_leaf, max_nodes)
    for r in range(left.shape[0]):
        strayed = strays[j, r]
        strays[to_left, r] = strayed | (0 if left[r] else bit)
        strays[to_right, r] = strayed | (bit if left[r] else 0)


#: Multiplying a 64-bit word's lowest set bit by this de Bruijn constant puts a
#: distinct pattern in the top 6 bits: LOWEST_BIT maps it back to the bit's index.
DE_BRUIJN = 0x03F79D71B4CB0A89
LOWEST_BIT = np.zeros(64, dtype=np.int64)
LOWEST_BIT[[((1 << bit) * DE_BRUIJN) % 2**64 >> 58 for bit in range(64)]] = range(64)
ALL_BITS = np.uint64(2**64 - 1)


@jit()
def _lowest_bit(word: np.uint64) -> int:
    """Index of the lowest set bit of a non-zero word."""
    lowest = word & (~word + np.uint64(1))
    return int(LOWEST_BIT[(lowest * np.uint64(DE_BRUIJN)) >> np.uint64(58)])


@jit()
def _row_codes(
    first_node: int,
    n_splits: int,
    columns: np.ndarray,
    codes: np.ndarray,
    nodes: np.ndarray,
    threshold: np.ndarray,
    cat_lut: np.ndarray,
    left: np.ndarray,
    path: np.ndarray,
) -> None:
    """path[r]: bit j set when row r takes the left branch of the tree's split j."""
    path[:] = 0
    for j in range(n_splits):
        _decide(first_node + j, columns, codes, nodes, threshold, cat_lut, left)
        for r in range(path.shape[0]):
            path[r] |= np.int64(left[r]) << j


@jit()
def _code_leaf(tree: int, code: int, trees: np.ndarray, nodes: np.ndarray) -> int:
    """The leaf (global number) a row with this code reaches in the tree."""
    first_node = trees[tree, NODE_START]
    if trees[tree, N_NODES] == 0:
        return int(trees[tree, LEAF_START])
    child = 0  # the root, numbered within the tree
    while True:
        node = first_node + child
        child_ref = nodes[node, LEFT] if (code >> child) & 1 else nodes[node, RIGHT]
        if child_ref < 0:
            return int(~child_ref)
        child = child_ref - first_node


@jit()
def _fill_code_values(
    trees: np.ndarray,
    nodes: np.ndarray,
    leaf_value: np.ndarray,
    code_start: np.ndarray,
    code_value: np.ndarray,
) -> None:
    """The leaf value each code reaches, for every tree tabulated by code."""
    for tree in range(trees.shape[0]):
        if code_start[tree] < 0:
            continue
        for code in range(1 << trees[tree, N_NODES]):
            leaf = _code_leaf(tree, code, trees, nodes)
            code_value[code_start[tree] + code] = leaf_value[leaf]


@jit()
def _lack_keys(rows: np.ndarray, leads: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """Per row at ``leads``, bit k set when its value of ``columns[k]`` (at most 64)
    is NaN."""
    keys = np.zeros(leads.shape[0], dtype=np.uint64)
    for i in range(leads.shape[0]):
        key = np.uint64(0)
        for k in range(columns.shape[0]):
            if np.isnan(rows[leads[i], columns[k]]):
                key |= np.uint64(1) << np.uint64(k)
        keys[i] = key
    return keys


@jit(parallel=True)
def _codes_kernel(
    rows: np.ndarray,
    trees: np.ndarray,
    nodes: np.ndarray,
    threshold: np.ndarray,
    cat_size: np.ndarray,
    cat_lut: np.ndarray,
    code_start: np.ndarray,
    out: np.ndarray,
) -> None:
    """out[r, tree]: row r's code in every tree tabulated by code, a block of rows
    at a time."""
    n_rows = rows.shape[0]
    for block in prange((n_rows + BLOCK_ROWS - 1) // BLOCK_ROWS):
        low = block * BLOCK_ROWS
        n = min(n_rows, low + BLOCK_ROWS) - low
        columns, codes = _block_columns(rows[low : low + n], cat_size)
        left = np.empty(n, dtype=np.bool_)
        path = np.empty(n, dtype=np.int64)
        for tree in range(trees.shape[0]):
            if code_start[tree] < 0:
                continue
            _row_codes(
                trees[tree, NODE_START],
                trees[tree, N_NODES],
                columns,
                codes,
                nodes,
                threshold,
                cat_lut,
                left,
                path,
            )
            for r in range(n):
                out[low + r, tree] = path[r]


@jit(parallel=True)
def _code_margin_kernel(
    codes: np.ndarray,
    rows: np.ndarray,
    trees: np.ndarray,
    code_start: np.ndarray,
    code_value: np.ndarray,
    out: np.ndarray,
) -> None:
    """out[r] for each r of ``rows``: the ``trees``' values at the row's codes,
    added tree by tree from 0 as the margin kernel adds them."""
    for i in prange(rows.shape[0]):
        r = rows[i]
        total = 0.0
        for t in range(trees.shape[0]):
            tree = trees[t]
            total += code_value[code_start[tree] + codes[r, tree]]
        out[r] = total


@jit(parallel=True)
def _answer_kernel(
    codes: np.ndarray,
    leads: np.ndarray,
    at: np.ndarray,
    trees: np.ndarray,
    code_start: np.ndarray,
    before: np.ndarray,
    after: np.ndarray,
    keep: np.ndarray,
    bits: np.ndarray,
    now: np.ndarray,
    out: np.ndarray,
) -> None:
    """out[i, a] for the rows r = leads[i] of each i in ``at``: now[r] minus the
    ``trees``' values at the row's codes (``before``: code values of its absent
    set) plus their values at the codes answer a leaves (``after[a]``: those of the
    answered set), summed tree by tree as predict_margin sums them."""
    n_answers, n_trees = keep.shape
    for j in prange(at.shape[0]):
        i = at[j]
        r = leads[i]
        total = 0.0
        for t in range(n_trees):
            tree = trees[t]
            total += before[code_start[tree] + codes[r, tree]]
        old = now[r] - total
        for a in range(n_answers):
            total = 0.0
            for t in range(n_trees):
                tree = trees[t]
                code = (np.int64(codes[r, tree]) & keep[a, t]) | bits[a, t]
                total += after[a, code_start[tree] + code]
            out[i, a] = old + total


@jit(parallel=True)
def _margin_kernel(
    rows: np.ndarray,
    trees: np.ndarray,
    nodes: np.ndarray,
    threshold: np.ndarray,
    cat_size: np.ndarray,
    cat_lut: np.ndarray,
    leaf_value: np.ndarray,
    leaf_masks: np.ndarray,
    mask_start: np.ndarray,
    code_start: np.ndarray,
    code_value: np.ndarray,
    node_skip: np.ndarray,
    tree_mixed: np.ndarray,
    mixed_value: np.ndarray,
    out: np.ndarray,
) -> None:
    """For a block of rows, tree by tree: decide each split for all rows; add the
    leaf value of each row's code (small trees), or clear the leaves a row cannot
    reach (QuickScorer) and add the value of the first one left. In a tree with
    skipped splits (absent features: see :class:`Collapsed`) the row goes both ways
    there, and each leaf no other split rules out adds its mixed value."""
    max_nodes, max_leaves = _tree_sizes(trees)
    n_rows = rows.shape[0]
    for block in prange((n_rows + BLOCK_ROWS - 1) // BLOCK_ROWS):
        low = block * BLOCK_ROWS
        n = min(n_rows, low + BLOCK_ROWS) - low
        columns, codes = _block_columns(rows[low : low + n], cat_size)
        left = np.empty(n, dtype=np.bool_)
        alive = np.empty(((max_leaves + 63) // 64, n), dtype=np.uint64)
        total = np.zeros(n)
        path = np.empty(n, dtype=np.int64)
        ruled_out = np.zeros((max_nodes + max_leaves, n), dtype=np.bool_)
        for tree in range(trees.shape[0]):
            first_node, first_leaf = trees[tree, NODE_START], trees[tree, LEAF_START]
            if code_start[tree] >= 0:
                _row_codes(
                    first_node,
                    trees[tree, N_NODES],
                    columns,
                    codes,
                    nodes,
                    threshold,
                    cat_lut,
                    left,
                    path,
                )
                for r in range(n):
                    total[r] += code_value[code_start[tree] + path[r]]
                continue
            if tree_mixed[tree]:
                _mixed_margins(
                    first_node,
                    trees[tree, N_NODES],
                    first_leaf,
                    trees[tree, N_LEAVES],
                    max_nodes,
                    (columns, codes),
                    (nodes, threshold, cat_lut, node_skip, mixed_value),
                    (left, ruled_out, total),
                )
                continue
            words = (trees[tree, N_LEAVES] + 63) // 64
            alive[:words] = ALL_BITS
            for j in range(trees[tree, N_NODES]):
                node = first_node + j
                _decide(node, columns, codes, nodes, threshold, cat_lut, left)
                for w in range(words):
                    mask, bits = leaf_masks[mask_start[tree] + j * words + w], alive[w]
                    for r in range(n):
                        bits[r] &= ALL_BITS if left[r] else mask
            for r in range(n):
                w = 0
                while alive[w, r] == 0:
                    w += 1
                leaf = first_leaf + 64 * w + _lowest_bit(alive[w, r])
                total[r] += leaf_value[leaf]
        out[low : low + n] = total


@jit()
def _mixed_margins(
    first_node: int,
    n_nodes: int,
    first_leaf: int,
    n_leaves: int,
    max_nodes: int,
    block: tuple[np.ndarray, np.ndarray],
    model: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    scratch: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    """Add one tree with skipped splits to a block's totals: carry down, node by
    node, whether a split the row does not take rules a node out (a skipped split
    passes both ways), then add the mixed value of each leaf not ruled out.
    ``block``: columns, codes; ``model``: nodes, threshold, cat_lut, node_skip,
    mixed_value; ``scratch``: left, ruled_out, total."""
    columns, codes = block
    nodes, threshold, cat_lut, node_skip, mixed_value = model
    left, ruled_out, total = scratch
    n = left.shape[0]
    ruled_out[0, :n] = False
    for j in range(n_nodes):
        node = first_node + j
        to_left = _child_position(nodes[node, LEFT], first_node, first_leaf, max_nodes)
        to_right = _child_position(
            nodes[node, RIGHT], first_node, first_leaf, max_nodes
        )
        if node_skip[node]:
            for r in range(n):
                ruled_out[to_left, r] = ruled_out[j, r]
                ruled_out[to_right, r] = ruled_out[j, r]
            continue
        _decide(node, columns, codes, nodes, threshold, cat_lut, left)
        for r in range(n):
            ruled_out[to_left, r] = ruled_out[j, r] or not left[r]
            ruled_out[to_right, r] = ruled_out[j, r] or left[r]
    for i in range(n_leaves):
        value = mixed_value[first_leaf + i]
        for r in range(n):
            if not ruled_out[max_nodes + i, r]:
                total[r] += value


@jit(parallel=True)
def _shap_kernel(
    rows: np.ndarray,
    trees: np.ndarray,
    nodes: np.ndarray,
    threshold: np.ndarray,
    cat_size: np.ndarray,
    cat_lut: np.ndarray,
    leaf_value: np.ndarray,
    leaves: np.ndarray,
    unique_zero: np.ndarray,
    leaf_mixed: np.ndarray,
    outputs: np.ndarray,
    out_group: np.ndarray,
    unique_out: np.ndarray,
    table_start: np.ndarray,
    table: np.ndarray,
    tree_codes: np.ndarray,
    tree_groups: np.ndarray,
    tree_table: np.ndarray,
    row_codes: np.ndarray,
    coded: bool,
    out: np.ndarray,
) -> None:
    """For a block of rows, tree by tree: decide each split for all rows; for a small
    tree add its table entry for each row's code (read from ``row_codes`` when
    ``coded``); otherwise carry down, to each leaf,
    the bits of the path features a row strays from, and add each leaf's table entry
    for each row's pattern (or compute it, untabulated, its ``leaf_mixed`` path
    features following with their zero shares)."""
    max_nodes, max_leaves = _tree_sizes(trees)
    size = _leaf_scratch(leaves)[0].shape[0]
    n_rows = rows.shape[0]
    for block in prange((n_rows + BLOCK_ROWS - 1) // BLOCK_ROWS):
        low = block * BLOCK_ROWS
        n = min(n_rows, low + BLOCK_ROWS) - low
        columns, codes = _block_columns(rows[low : low + n], cat_size)
        # strays of internal nodes 0..max_nodes-1, then of leaves (the root's is 0)
        strays = np.zeros((max_nodes + max_leaves, n), dtype=np.int64)
        left = np.empty(n, dtype=np.bool_)
        weights, poly, phi = np.empty(size), np.empty(size), np.empty(size)
        scratch = (weights, poly, phi, np.empty(size))
        path = np.empty(n, dtype=np.int64)
        for tree in range(trees.shape[0]):
            first_node, first_leaf = trees[tree, NODE_START], trees[tree, LEAF_START]
            start, width = tree_codes[tree, 0], tree_codes[tree, 1]
            if start >= 0:
                if coded:
                    for r in range(n):
                        path[r] = row_codes[low + r, tree]
                else:
                    _row_codes(
                        first_node,
                        trees[tree, N_NODES],
                        columns,
                        codes,
                        nodes,
                        threshold,
                        cat_lut,
                        left,
                        path,
                    )
                fed = tree_groups[tree_codes[tree, 2] : tree_codes[tree, 2] + width]
                for r in range(n):
                    entry = start + path[r] * width
                    for s in range(width):
                        out[low + r, fed[s]] += tree_table[entry + s]
                continue
            for j in range(trees[tree, N_NODES]):
                node = first_node + j
                _decide(node, columns, codes, nodes, threshold, cat_lut, left)
                _carry_strays(j, first_node, first_leaf, max_nodes, nodes, left, strays)
            for i in range(trees[tree, N_LEAVES]):
                leaf = first_leaf + i
                d = leaves[leaf, N_UNIQUE]
                if d == 0:
                    continue
                full = (np.int64(1) << d) - 1
                groups = out_group[
                    outputs[leaf, OUT_START] : outputs[leaf, OUT_START]
                    + outputs[leaf, N_OUT]
                ]
                start, width = table_start[leaf], outputs[leaf, N_OUT]
                if start >= 0:
                    for r in range(n):
                        entry = start + (full & ~strays[max_nodes + i, r]) * width
                        for s in range(width):
                            out[low + r, groups[s]] += table[entry + s]
                    continue
                first = leaves[leaf, UNIQUE_START]
                zero = unique_zero[first : first + d]
                _shapley_weights(d, weights)
                for r in range(n):
                    pattern = full & ~strays[max_nodes + i, r]
                    _any_leaf_phi(
                        leaf_value[leaf], d, pattern, leaf_mixed[leaf], zero, scratch
                    )
                    for k in range(d):
                        out[low + r, groups[unique_out[first + k]]] += phi[k]


@jit()
def _goes_left(
    node: int,
    value: float,
    nodes: np.ndarray,
    threshold: np.ndarray,
    cat_size: np.ndarray,
    cat_lut: np.ndarray,
) -> bool:
    """:func:`_decide` for one value."""
    kind = nodes[node, KIND]
    if kind == CATEGORICAL:
        size = cat_size[nodes[node, FEATURE]]
        code = int(value) if value > -1.0 and value < size else size
        return bool(cat_lut[nodes[node, CAT_START] + code])
    if kind == 1:
        if value != value or abs(value) <= ZERO_THRESHOLD:
            return bool(nodes[node, NAN_LEFT] == 1)
        return bool(value <= threshold[node])
    if nodes[node, NAN_LEFT] == 1:
        return not value > threshold[node]
    return bool(value <= threshold[node])


@jit()
def _mixed_leaf_phi(
    value: float,
    n_unique: int,
    follows: np.ndarray,
    zero: np.ndarray,
    weights: np.ndarray,
    poly: np.ndarray,
    phi: np.ndarray,
) -> None:
    """:func:`_leaf_phi` for a row that follows each path feature with a weight
    ``follows[k]`` (1 or 0 as a pattern bit, the zero share for an absent one)."""
    for k in range(n_unique):
        poly[0] = 1.0
        size = 1
        for j in range(n_unique):
            if j == k:
                continue
            poly[size] = 0.0  # multiply by (z_j + o_j t)
            for m in range(size, 0, -1):
                poly[m] = poly[m] * zero[j] + poly[m - 1] * follows[j]
            poly[0] *= zero[j]
            size += 1
        total = 0.0
        for m in range(size):
            total += poly[m] * weights[m]
        phi[k] = value * (follows[k] - zero[k]) * total


@jit()
def _absent_leaf_phi(
    leaf: int,
    strays: int,
    row: np.ndarray,
    absent: np.ndarray,
    leaf_value: np.ndarray,
    leaves: np.ndarray,
    unique_feature: np.ndarray,
    unique_zero: np.ndarray,
    outputs: np.ndarray,
    out_group: np.ndarray,
    unique_out: np.ndarray,
    table_start: np.ndarray,
    table: np.ndarray,
    max_mixed: int,
    scratch: np.ndarray,
    out: np.ndarray,
) -> None:
    """Add one leaf's grouped contributions for a row, its absent path features
    followed with their zero shares: Shapley values are linear in the game, so the
    result is the mix of the leaf's pattern entries with the absent bits set and
    cleared, weighted z and 1 - z."""
    d = leaves[leaf, N_UNIQUE]
    if d == 0:
        return
    first = leaves[leaf, UNIQUE_START]
    zero = unique_zero[first : first + d]
    missing, m = np.int64(0), 0
    for k in range(d):
        feature = unique_feature[first + k]
        if absent[feature] and row[feature] != row[feature]:
            missing |= np.int64(1) << k
            m += 1
    full = (np.int64(1) << d) - 1
    base = full & ~strays & ~missing
    out_start, width = outputs[leaf, OUT_START], outputs[leaf, N_OUT]
    if table_start[leaf] >= 0 and m <= max_mixed:
        sub = missing
        while True:
            weight = 1.0
            for k in range(d):
                if (missing >> k) & 1:
                    weight *= zero[k] if (sub >> k) & 1 else 1.0 - zero[k]
            entry = table_start[leaf] + (base | sub) * width
            for s in range(width):
                out[out_group[out_start + s]] += weight * table[entry + s]
            if sub == 0:
                break
            sub = (sub - 1) & missing
        return
    weights, poly, phi, follows = scratch[0], scratch[1], scratch[2], scratch[3]
    for k in range(d):
        follows[k] = zero[k] if (missing >> k) & 1 else float((base >> k) & 1)
    _shapley_weights(d, weights)
    _mixed_leaf_phi(leaf_value[leaf], d, follows, zero, weights, poly, phi)
    for k in range(d):
        out[out_group[out_start + unique_out[first + k]]] += phi[k]


@jit(parallel=True)
def _absent_kernel(
    rows: np.ndarray,
    absent: np.ndarray,
    trees: np.ndarray,
    nodes: np.ndarray,
    threshold: np.ndarray,
    cat_size: np.ndarray,
    cat_lut: np.ndarray,
    left_share: np.ndarray,
    leaf_value: np.ndarray,
    leaves: np.ndarray,
    unique_feature: np.ndarray,
    unique_zero: np.ndarray,
    outputs: np.ndarray,
    out_group: np.ndarray,
    unique_out: np.ndarray,
    table_start: np.ndarray,
    table: np.ndarray,
    want_phi: bool,
    max_mixed: int,
    margin: np.ndarray,
    phi: np.ndarray,
) -> None:
    """Per row, tree by tree, depth first: at a split on an absent feature the row
    goes both ways, each weighted by its share of training rows; the margin adds
    each reached leaf's value times its weight. With ``want_phi`` every leaf is
    visited (as TreeSHAP visits them), carrying the bits of the present features
    the row strays from, and adds its contributions."""
    max_nodes, max_leaves = _tree_sizes(trees)
    size = _leaf_scratch(leaves)[0].shape[0]
    depth = max_nodes + max_leaves
    for r in prange(rows.shape[0]):
        row = rows[r]
        stack = np.empty(depth, dtype=np.int64)
        reach = np.empty(depth)
        strays = np.empty(depth, dtype=np.int64)
        scratch = np.empty((4, size))
        total = 0.0
        for tree in range(trees.shape[0]):
            if trees[tree, N_NODES] == 0:
                total += leaf_value[trees[tree, LEAF_START]]
                continue
            top = 1
            stack[0], reach[0], strays[0] = trees[tree, NODE_START], 1.0, 0
            while top > 0:
                top -= 1
                node, weight, strayed = stack[top], reach[top], strays[top]
                if node < 0:
                    leaf = ~node
                    if strayed == 0:
                        total += weight * leaf_value[leaf]
                    if want_phi:
                        _absent_leaf_phi(
                            leaf,
                            strayed,
                            row,
                            absent,
                            leaf_value,
                            leaves,
                            unique_feature,
                            unique_zero,
                            outputs,
                            out_group,
                            unique_out,
                            table_start,
                            table,
                            max_mixed,
                            scratch,
                            phi[r],
                        )
                    continue
                feature = nodes[node, FEATURE]
                value = row[feature]
                left_child, right_child = nodes[node, LEFT], nodes[node, RIGHT]
                if absent[feature] and value != value:
                    share = left_share[node]
                    stack[top], reach[top], strays[top] = (
                        left_child,
                        weight * share,
                        strayed,
                    )
                    stack[top + 1], reach[top + 1] = right_child, weight * (1.0 - share)
                    strays[top + 1] = strayed
                    top += 2
                    continue
                bit = np.int64(1) << nodes[node, SLOT]
                left = _goes_left(node, value, nodes, threshold, cat_size, cat_lut)
                if want_phi or left:
                    stack[top], reach[top] = left_child, weight
                    strays[top] = strayed | (0 if left else bit)
                    top += 1
                if want_phi or not left:
                    stack[top], reach[top] = right_child, weight
                    strays[top] = strayed | (bit if left else 0)
                    top += 1
        margin[r] = total
