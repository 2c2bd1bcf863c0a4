"""The pool: stable ids, which items carry labels, and refusal of bad features."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from alloop.data.dataset import Dataset
from alloop.data.pool import Pool, as_features, validate_features


def test_default_and_given_ids_are_strings():
    assert Pool(np.eye(3)).ids.tolist() == ["0", "1", "2"]
    pool = Pool(np.eye(3), ids=[10, 11, "x"])
    assert pool.ids.tolist() == ["10", "11", "x"]
    np.testing.assert_array_equal(pool.index_of([11, "x", "10"]), [1, 2, 0])


def test_bad_ids_are_refused():
    with pytest.raises(ValueError, match="3 rows but 2 ids"):
        Pool(np.eye(3), ids=["a", "b"])
    with pytest.raises(ValueError, match="unique"):
        Pool(np.eye(3), ids=["a", "b", "a"])
    with pytest.raises(ValueError, match="unique"):
        Pool(np.eye(2), ids=[1, "1"])  # equal once stored as text


def test_unknown_ids_are_named():
    pool = Pool(np.eye(3), ids=["a", "b", "c"])
    with pytest.raises(KeyError, match="'zz'"):
        pool.index_of(["a", "zz"])
    with pytest.raises(KeyError, match="'zz'"):
        pool.add_labels(["zz"], [1])
    assert not pool.labeled.any()  # a failed call labels nothing


def test_add_labels_moves_items_from_unlabeled_to_labeled():
    X = np.arange(12.0).reshape(4, 3)
    pool = Pool(X, ids=["a", "b", "c", "d"])
    assert len(pool) == 4 and pool.labeled_indices().size == 0
    pool.add_labels(["c", "a"], ["cat", "dog"])
    np.testing.assert_array_equal(pool.labeled_indices(), [0, 2])
    np.testing.assert_array_equal(pool.unlabeled_indices(), [1, 3])
    assert pool.unlabeled_ids().tolist() == ["b", "d"]
    X_labeled, y_labeled = pool.labeled_data()
    np.testing.assert_array_equal(X_labeled, X[[0, 2]])  # pool order, not answer order
    assert y_labeled.tolist() == ["dog", "cat"]
    assert repr(pool) == "Pool(n=4, labeled=2)"


def test_a_later_label_replaces_the_earlier_one():
    pool = Pool(np.eye(2), ids=["a", "b"])
    pool.add_labels(["a"], [0])
    pool.add_labels(["a"], [1])
    assert pool.labeled_data()[1].tolist() == [1]
    assert pool.labeled.sum() == 1


def test_add_labels_length_mismatch():
    with pytest.raises(ValueError, match="2 ids but 1 labels"):
        Pool(np.eye(2)).add_labels(["0", "1"], [1])


def test_no_labels_yet_gives_empty_labeled_data():
    X_labeled, y_labeled = Pool(np.eye(3)).labeled_data()
    assert X_labeled.shape == (0, 3) and y_labeled.shape == (0,)


def test_features_takes_rows():
    X = np.arange(12.0).reshape(4, 3)
    np.testing.assert_array_equal(Pool(X).features(np.array([3, 1])), X[[3, 1]])


def test_dense_nan_and_inf_are_refused_naming_rows():
    X = np.ones((5, 2))
    X[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"rows \[3\], columns \[1\]"):
        Pool(X)
    X[3, 1], X[1, 0] = 1.0, -np.inf
    with pytest.raises(ValueError, match=r"rows \[1\], columns \[0\]"):
        Pool(X)


def test_sparse_nan_and_inf_are_refused_naming_rows():
    X = sp.random(6, 4, density=0.5, format="csr", random_state=0)
    X.data[:] = 1.0
    X = X.tolil()
    X[4, 2], X[1, 0] = np.nan, np.inf
    with pytest.raises(ValueError, match=r"rows \[1, 4\]"):
        Pool(X.tocsr())


def test_empty_and_non_2d_pools_are_refused():
    with pytest.raises(ValueError, match="empty"):
        Pool(np.zeros((0, 3)))
    with pytest.raises(ValueError, match="2-D"):
        Pool(np.arange(3.0))


def test_sparse_pool_stays_csr():
    dense = np.array([[0.0, 2.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 3.0]])
    pool = Pool(sp.coo_matrix(dense))
    assert sp.issparse(pool.X) and pool.X.format == "csr" and pool.X.dtype == np.float64
    np.testing.assert_array_equal(pool.features(np.array([2, 0])).toarray(), dense[[2, 0]])
    pool.add_labels(["1"], [5])
    X_labeled, _ = pool.labeled_data()
    np.testing.assert_array_equal(X_labeled.toarray(), dense[[1]])


def test_sparse_array_input_is_accepted():
    pool = Pool(sp.csr_array(np.eye(3)))
    assert sp.issparse(pool.X) and pool.X.shape == (3, 3)


def test_numeric_dataframe_and_tensor_inputs():
    frame = pd.DataFrame({"a": [1, 2], "b": [0.5, 1.5], "c": [True, False]})
    np.testing.assert_array_equal(Pool(frame).X, [[1.0, 0.5, 1.0], [2.0, 1.5, 0.0]])
    X = torch.arange(6.0, requires_grad=True).reshape(3, 2)
    pool = Pool(X)
    assert isinstance(pool.X, np.ndarray) and pool.X.dtype == np.float64
    np.testing.assert_array_equal(pool.X, [[0, 1], [2, 3], [4, 5]])


def test_dataframe_with_non_numeric_column_is_refused_naming_it():
    frame = pd.DataFrame({"a": [1.0, 2.0], "colour": ["red", "blue"]})
    with pytest.raises(ValueError, match=r"non-numeric columns \['colour'\]"):
        Pool(frame)


def test_dataframe_missing_values_are_named():
    frame = pd.DataFrame({"a": pd.array([1, None, 3], dtype="Int64"), "b": [1.0, 2.0, 3.0]})
    with pytest.raises(ValueError, match=r"rows \[1\], columns \[0\]"):
        Pool(frame)


def test_non_numeric_array_is_refused():
    with pytest.raises(ValueError, match="must be numeric"):
        validate_features(np.array([["a", "b"]]))


def test_raw_and_feature_names_are_kept():
    pool = Pool(np.eye(2), raw=["first text", "second text"], feature_names=["x", "y"])
    assert pool.raw[pool.index_of(["1"])[0]] == "second text"
    assert pool.feature_names == ["x", "y"]


def test_raw_of_the_wrong_length_is_refused():
    # A person must be shown the item being labeled; misaligned raw would show another one.
    with pytest.raises(ValueError, match="raw"):
        Pool(np.eye(3), raw=["only", "two"])


def test_feature_names_of_the_wrong_length_are_refused():
    with pytest.raises(ValueError, match="feature"):
        Pool(np.eye(3), feature_names=["a"])


def test_pool_and_data_set_share_one_numeric_2d_check_each_naming_its_input():
    with pytest.raises(ValueError, match=r"^X_test must be 2-D \(n_samples, n_features\); got shape \(3,\)$"):
        validate_features(np.ones(3), "X_test")
    with pytest.raises(ValueError, match=r"^X of 'toy' must be 2-D \(n_samples, n_features\); got shape \(3,\)$"):
        Dataset(np.ones(3), np.zeros(3), name="toy")
    with pytest.raises(ValueError, match=r"X of 'toy' must be numeric"):
        Dataset(np.array([["a"], ["b"]]), np.zeros(2), name="toy")
    frame = pd.DataFrame({"a": [1.0, 2.0], "colour": ["red", "blue"]})
    with pytest.raises(ValueError, match=r"X of 'toy' has non-numeric columns \['colour'\]"):
        Dataset(frame, np.zeros(2), name="toy")


def test_nan_is_refused_by_both_with_their_own_fix():
    X = np.ones((3, 2))
    X[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"rows \[2\], columns \[1\]\); impute or drop them before building the pool"):
        Pool(X)
    with pytest.raises(ValueError, match=r"NaN or inf in 1 rows: 'c' \(row 2\); fill in or drop those rows"):
        Dataset(X, np.zeros(3), ids=["a", "b", "c"])
    sparse = sp.csr_matrix(X)
    with pytest.raises(ValueError, match=r"NaN or inf in rows \[2\]; impute or drop those rows"):
        Pool(sparse)


def test_duplicate_sparse_entries_are_summed_without_touching_the_input():
    X = sp.csr_matrix((np.array([1.0, 2.0]), np.array([0, 0]), np.array([0, 2, 2])), shape=(2, 2))
    assert not X.has_canonical_format
    out = as_features(X)
    assert out.has_canonical_format and out.nnz == 1 and out[0, 0] == 3.0
    assert X.nnz == 2 and not X.has_canonical_format  # the caller's matrix is as it was
    np.testing.assert_array_equal(Pool(X).X.toarray(), [[3.0, 0.0], [0.0, 0.0]])
