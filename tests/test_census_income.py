"""The Census-Income (KDD) loader and benchmark, on files in the exact raw format.

`write_census_income` writes `census-income.data` / `.test` as UCI publishes
them (no header, 42 fields joined by ", ", the class "- 50000." / "50000+."),
with planted signal: income rises with education, age and capital gains; the
never-married rate falls with age.
"""

import gzip
import sys
from pathlib import Path

import numpy as np
import pytest

from mtl_tf.config import Config, DataConfig, apply_overrides, get_preset
from mtl_tf.data import load_data
from mtl_tf.data.census_income import (
    CENSUS_INCOME_SCHEMA,
    CENSUS_INCOME_TASKS,
    COLUMNS,
    census_income_splits,
    load_census_income,
)
from mtl_tf.experiment import prepare_data

EDUCATION = {"Children": -2.0, "High school graduate": 0.0,
             "Some college but no degree": 0.5,
             "Bachelors degree(BA AB BS)": 1.5,
             "Masters degree(MA MS MEng MEd MSW MBA)": 2.2,
             "Doctorate degree(PhD EdD)": 2.8}
MARITAL = ("Never married", "Married-civilian spouse present", "Divorced",
           "Widowed", "Separated")


def census_lines(rows: int, seed: int) -> list[str]:
    """`rows` raw lines with the published field layout and planted signal."""
    rng = np.random.default_rng(seed)
    age = rng.integers(0, 90, rows)
    education = rng.choice(list(EDUCATION), rows)
    gains = np.where(rng.random(rows) < 0.1, rng.integers(1, 99999, rows), 0)
    logit = (np.vectorize(EDUCATION.get)(education) + 0.04 * (age - 45)
             + 2.0 * (gains > 0) - 1.2)
    rich = rng.random(rows) < 1 / (1 + np.exp(-logit))
    single = rng.random(rows) < 1 / (1 + np.exp(0.15 * (age - 30)))
    lines = []
    for i in range(rows):
        values = {name: str(rng.integers(0, 5)) for name in COLUMNS}
        values.update(
            age=str(age[i]), education=education[i], capital_gains=str(gains[i]),
            class_worker=rng.choice(["Not in universe", "Private",
                                     "Self-employed-incorporated"]),
            marital_stat=("Never married" if single[i]
                          else rng.choice(MARITAL[1:])),
            sex=rng.choice(["Male", "Female"]), det_ind_code=str(rng.integers(0, 52)),
            wage_per_hour=str(rng.integers(0, 2000) * (rng.random() < 0.2)),
            instance_weight=f"{rng.uniform(500, 4000):.2f}",
            year=rng.choice(["94", "95"]),
            income_50k="50000+." if rich[i] else "- 50000.",
            country_self=rng.choice(["United-States", "?", "Mexico"]))
        lines.append(", ".join(values[name] for name in COLUMNS))
    return lines


def write_census_income(directory: Path, train_rows: int = 1200,
                        test_rows: int = 800, *, gz: bool = False) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, rows, seed in (("census-income.data", train_rows, 0),
                             ("census-income.test", test_rows, 1)):
        text = "\n".join(census_lines(rows, seed)) + "\n"
        if gz:
            with gzip.open(directory / f"{name}.gz", "wt") as handle:
                handle.write(text)
        else:
            (directory / name).write_text(text)
    return directory


def test_the_raw_files_parse_into_the_built_in_schema(tmp_path):
    directory = write_census_income(tmp_path / "census")
    first = (directory / "census-income.data").read_text().splitlines()[0]
    assert first.count(", ") == 41 and first.endswith(".")
    parts = load_census_income(directory)
    train, test = parts["train"], parts["test"]
    assert (len(train.interactions), len(test.interactions)) == (1200, 800)
    assert train.users is None and train.items is None
    lines = census_lines(1200, 0)
    rich = np.mean([line.endswith("50000+.") for line in lines])
    single = np.mean([", Never married, " in line for line in lines])
    assert train.interactions["income"].mean() == pytest.approx(rich)
    assert train.interactions["never_married"].mean() == pytest.approx(single)
    assert 0.1 < rich < 0.6 and 0.1 < single < 0.7
    names = CENSUS_INCOME_SCHEMA.names
    assert len(names) == 39 and "instance_weight" not in names
    assert "marital_stat" not in names and "income_50k" not in names
    assert all(f.side == "user" for f in CENSUS_INCOME_SCHEMA.features)
    kinds = {f.name: (f.kind, f.dtype, f.transform)
             for f in CENSUS_INCOME_SCHEMA.features}
    assert kinds["capital_gains"] == ("numeric", "float32", "log1p")
    assert kinds["age"] == ("numeric", "float32", "standardize")
    assert kinds["det_ind_code"] == ("categorical", "string", "standardize")
    row = train.interactions.iloc[0]
    assert row["education"] == lines[0].split(", ")[4]  # stripped, as written
    assert isinstance(row["det_ind_code"], str) and row["_line"] == 1
    assert train.interactions["instance_weight"].dtype == np.float64


def test_the_protocol_splits_the_test_file_in_halves(tmp_path):
    parts = load_census_income(write_census_income(tmp_path / "census"))
    data, splits = census_income_splits(parts, seed=42)
    assert splits.sizes() == {"train": 1200, "validation": 400, "test": 400}
    assert len(data.interactions) == 2000
    lines = {*splits.validation["_line"]} | {*splits.test["_line"]}
    assert len(lines) == 800 and not {*splits.validation["_line"]} & {
        *splits.test["_line"]}
    again = census_income_splits(parts, seed=42)[1]
    assert again.test["_line"].tolist() == splits.test["_line"].tolist()


def test_gzipped_files_and_max_rows(tmp_path):
    directory = write_census_income(tmp_path / "census", 300, 200, gz=True)
    parts = load_census_income(directory, max_rows=150)
    assert len(parts["train"].interactions) == 150
    assert len(parts["test"].interactions) == 150
    assert parts["train"].interactions["_file"].iloc[0].endswith(".data.gz")


def test_a_missing_directory_or_file_lists_what_is_there(tmp_path):
    with pytest.raises(ValueError, match="data directory not found"):
        load_census_income(tmp_path / "nope")
    (tmp_path / "census-income.data").write_text("")
    (tmp_path / "notes.txt").write_text("")
    with pytest.raises(ValueError, match=r"missing \['census-income.test\[.gz\]'\]; "
                       r"it holds \['census-income.data', 'notes.txt'\]"):
        load_census_income(tmp_path)


def test_malformed_lines_name_the_file_and_line(tmp_path):
    directory = write_census_income(tmp_path / "census", 20, 20)
    path = directory / "census-income.data"
    lines = path.read_text().splitlines()
    lines[4] = lines[4].replace(", ", ",  x, ", 1)  # 43 fields
    lines[9] = lines[9].replace("- 50000.", "maybe.").replace("50000+.", "maybe.")
    path.write_text("\n".join(lines) + "\n\n")
    with pytest.raises(ValueError, match=r"census-income.data, line 5: expected 42 "
                       r"comma-separated fields, found 43"):
        load_census_income(directory)
    lenient = load_census_income(directory, lenient=True)["train"]
    assert len(lenient.interactions) == 18
    assert lenient.report.malformed_rows == 1
    assert lenient.report.out_of_range_labels == 1
    assert lenient.report.rows_read == 20
    lines[4] = census_lines(20, 0)[4]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"census-income.data, line 10: field "
                       r"'income_50k'.*'maybe.'"):
        load_census_income(directory)


def test_the_config_source_reads_both_files(tmp_path):
    directory = write_census_income(tmp_path / "census", 50, 30)
    config = Config(data=DataConfig(source="census_income", data_dir=str(directory)),
                    schema=CENSUS_INCOME_SCHEMA, tasks=CENSUS_INCOME_TASKS)
    data = load_data(config)
    assert len(data.interactions) == 80 and data.schema == CENSUS_INCOME_SCHEMA
    with pytest.raises(ValueError, match="needs a directory"):
        load_data(Config(data=DataConfig(source="census_income"),
                         schema=CENSUS_INCOME_SCHEMA, tasks=CENSUS_INCOME_TASKS))


def test_the_preset_trains_on_the_published_split(tmp_path):
    directory = write_census_income(tmp_path / "census", 300, 200)
    config = apply_overrides(get_preset("census_income"),
                             [f"data.data_dir={directory}"])
    assert (config.data.split, config.schema) == ("published", CENSUS_INCOME_SCHEMA)
    prepared = prepare_data(config)
    expected = census_income_splits(load_census_income(directory), seed=42)[1]
    assert prepared.splits.sizes() == {"train": 300, "validation": 100, "test": 100}
    assert prepared.splits.test["_line"].tolist() == expected.test["_line"].tolist()
    with pytest.raises(ValueError, match="data.split='published' is the protocol"):
        apply_overrides(get_preset("default"), ["data.split=published"])


def test_every_benchmark_body_has_the_reference_budget(repo_root):
    sys.path.insert(0, str(repo_root / "benchmarks"))
    try:
        from mtl_benchmark import EMBEDDING_DIM, body_sizes
    finally:
        sys.path.remove(str(repo_root / "benchmarks"))
    from mtl_tf.model.architectures import build_architecture, parameter_count

    for num_tasks, input_dim in ((2, EMBEDDING_DIM), (3, 3 * EMBEDDING_DIM)):
        sizes = body_sizes(num_tasks, input_dim)
        assert sorted(sizes) == ["esmm", "mmoe", "ple", "shared_bottom",
                                 "single_task"]
        assert sizes["esmm"] == sizes["single_task"]
        counts = {name: parameter_count(build_architecture(
            "single_task" if name == "esmm" else name, num_tasks, **kwargs),
            input_dim) for name, kwargs in sizes.items()}
        assert counts["mmoe"] == (8 * (input_dim * 16 + 16)
                                  + num_tasks * input_dim * 8)
        assert all(abs(c - counts["mmoe"]) <= 0.05 * counts["mmoe"]
                   for c in counts.values()), counts
