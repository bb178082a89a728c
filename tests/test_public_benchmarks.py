"""The public benchmark scripts and presets, end to end on generated raw files.

Each data set's test module writes its files in the exact published format with
planted signal (`write_census_income`, `write_ali_ccp`, `write_aliexpress`,
`write_kuairand`); here every `benchmarks/<name>.py` runs on them as a user
would run it on the real download (one seed, two epochs, two architectures to
keep each run to seconds), and the `--preset <name>` CLI trains and exports.
"""

import csv
import json
import subprocess
import sys

import pytest
from test_ali_ccp import write_ali_ccp
from test_aliexpress import write_aliexpress
from test_census_income import write_census_income
from test_end_to_end import _clean_env
from test_kuairand import write_kuairand


def run_script(repo_root, script: str, arguments: list[str]) -> str:
    command = [sys.executable, str(repo_root / "benchmarks" / script), *arguments,
               "--seeds", "1", "--epochs", "2", "--batch-size", "256"]
    process = subprocess.run(command, cwd=repo_root, env=_clean_env(),
                             capture_output=True, text=True, timeout=600)
    assert process.returncode == 0, process.stderr[-3000:]
    return process.stdout


def read_rows(path) -> list[dict]:
    with open(path) as handle:
        return list(csv.DictReader(handle))


def check_table(rows: list[dict], architectures: list[str], aucs: list[str],
                published: dict[str, dict[str, str]]) -> None:
    """The architectures ran, each AUC learned the planted signal, the budgets
    match and the published numbers sit beside ours."""
    assert [r["architecture"] for r in rows] == architectures
    for row in rows:
        for column in aucs:
            assert 0.5 < float(row[column]) <= 1.0, (row["architecture"], column)
            assert float(row[f"{column} std"]) == 0.0  # one seed
            assert row.get(f"published {column}", "") == published.get(
                row["architecture"], {}).get(column, "")
    budgets = [int(r["body params"]) for r in rows]
    assert max(budgets) <= 1.1 * min(budgets)


def test_census_income_script(tmp_path, repo_root):
    directory = write_census_income(tmp_path / "census", 1500, 1000)
    out = tmp_path / "out"
    stdout = run_script(repo_root, "census_income.py",
                        ["--data-dir", str(directory), "--max-rows", "1200",
                         "--architectures", "shared_bottom,mmoe",
                         "--out-dir", str(out)])
    assert "aitm (published only)" in stdout
    rows = read_rows(out / "census_income.csv")
    assert list(rows[0]) == [
        "architecture", "body", "body params", "params", "seeds",
        "income auc", "income auc std", "income calibration",
        "income calibration std", "marital auc", "marital auc std",
        "marital calibration", "marital calibration std", "best epoch",
        "published income auc", "published marital auc"]
    check_table(rows, ["shared_bottom", "mmoe"], ["income auc", "marital auc"],
                {"shared_bottom": {"income auc": "0.956", "marital auc": "0.9948"},
                 "mmoe": {"income auc": "0.9579", "marital auc": "0.995"}})
    for row in rows:
        assert 0.5 < float(row["income calibration"]) < 2.0
    assert (out / "census_income.png").stat().st_size > 0


def test_ali_ccp_script(tmp_path, repo_root):
    directory = write_ali_ccp(tmp_path / "ali-ccp", train_rows=3000, test_rows=1500)
    out = tmp_path / "out"
    stdout = run_script(repo_root, "ali_ccp.py",
                        ["--data-dir", str(directory), "--architectures",
                         "mmoe,esmm", "--out-dir", str(out)])
    assert "split {'train': 2700, 'validation': 300, 'test': 1500}" in stdout
    rows = read_rows(out / "ali_ccp.csv")
    check_table(rows, ["mmoe", "esmm"], ["click auc", "purchase auc"],
                {"mmoe": {"click auc": "0.587", "purchase auc": "0.633"},
                 "esmm": {"click auc": "0.5975", "purchase auc": "0.6363"}})
    mmoe, esmm = rows
    # The CVR AUC on clicked rows exists only for the chain; GAUC per user.
    assert mmoe["purchase|click auc"] == "" and esmm["published purchase|click auc"]
    assert 0.5 < float(esmm["purchase|click auc"]) <= 1.0
    for row in rows:
        assert 0.5 < float(row["click gauc"]) <= 1.0
    assert (out / "ali_ccp.png").stat().st_size > 0


def test_aliexpress_script(tmp_path, repo_root):
    directory = write_aliexpress(tmp_path / "aliexpress", "ES", 3000, 1500)
    out = tmp_path / "out"
    stdout = run_script(repo_root, "aliexpress.py",
                        ["--data-dir", str(directory), "--country", "ES",
                         "--architectures", "ple,esmm", "--out-dir", str(out)])
    assert "metaheac (published only)" in stdout
    rows = read_rows(out / "aliexpress_es.csv")
    check_table(rows, ["ple", "esmm"], ["click auc", "purchase auc"],
                {"ple": {"click auc": "0.7273", "purchase auc": "0.8913"}})
    assert "click gauc" not in rows[0]  # no user key in these files
    assert (out / "aliexpress_es.png").stat().st_size > 0


def test_kuairand_script(tmp_path, repo_root):
    directory = write_kuairand(tmp_path / "KuaiRand-Pure", num_users=200,
                               num_videos=150, rows_per_log=2000)
    out = tmp_path / "out"
    run_script(repo_root, "kuairand.py",
               ["--data-dir", str(directory), "--architectures",
                "single_task,mmoe", "--out-dir", str(out)])
    rows = read_rows(out / "kuairand.csv")
    check_table(rows, ["single_task", "mmoe"],
                ["click auc", "long_view auc", "like auc"], {})
    assert not any(c.startswith("published") for c in rows[0])  # none published
    for row in rows:
        assert 0.2 < float(row["hr@10"]) < float(row["hr@100"]) <= 1.0
        assert 0.5 < float(row["click gauc"]) <= 1.0
    assert (out / "kuairand.png").stat().st_size > 0


@pytest.mark.parametrize("preset", ["aliexpress", "kuairand"])
def test_the_presets_train_and_export_on_the_published_split(tmp_path, repo_root,
                                                             preset):
    if preset == "aliexpress":
        data_dir = write_aliexpress(tmp_path / "data", "FR", 600, 300) / "AliExpress_FR"
    else:
        data_dir = write_kuairand(tmp_path / "data", rows_per_log=600)
    command = [sys.executable, "-m", "mtl_tf.train", "--preset", preset,
               "--data-dir", str(data_dir), "--output-dir", str(tmp_path / "run"),
               "--export-dir", str(tmp_path / "saved_models"),
               "--set", "train.epochs=1", "--set", "train.batch_size=256"]
    process = subprocess.run(command, cwd=repo_root, env=_clean_env(),
                             capture_output=True, text=True, timeout=600)
    assert process.returncode == 0, process.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "metrics.json").read_text())
    export = tmp_path / "saved_models" / f"mtl_{preset}" / "1"
    assert (export / "saved_model.pb").is_file()
    schema = json.loads((export / "assets.extra" / "schema.json").read_text())
    if preset == "aliexpress":
        assert summary["data"]["test"] == 300  # the whole test file
        assert summary["data"]["validation"] == 60  # 10% of the train file
        assert "categorical_1" in json.dumps(schema)
    else:
        assert "hit_rate_at_10" in summary["metrics"]
        assert "recommend" in json.dumps(schema)
    assert "click_auc" in summary["metrics"]


def test_every_public_source_loads_and_splits_as_published(tmp_path):
    from mtl_tf.config import apply_overrides, get_preset
    from mtl_tf.data import load_data
    from mtl_tf.data.ali_ccp import ali_ccp_splits, load_ali_ccp
    from mtl_tf.data.aliexpress import aliexpress_splits, load_aliexpress
    from mtl_tf.data.census_income import census_income_splits, load_census_income
    from mtl_tf.data.kuairand import kuairand_splits, load_kuairand
    from mtl_tf.data.public import PUBLIC_SOURCES, public_source

    directories = {
        "census_income": write_census_income(tmp_path / "census", 120, 80),
        "ali_ccp": write_ali_ccp(tmp_path / "ali-ccp", train_rows=300, test_rows=100),
        "aliexpress": write_aliexpress(tmp_path / "ae", "NL", 200, 100)
        / "AliExpress_NL",
        "kuairand": write_kuairand(tmp_path / "kr", rows_per_log=300)}
    expected = {
        "census_income": lambda d: census_income_splits(load_census_income(d), 42)[1],
        "ali_ccp": lambda d: ali_ccp_splits(load_ali_ccp(d), seed=42),
        "aliexpress": lambda d: aliexpress_splits(load_aliexpress(d), seed=42),
        "kuairand": lambda d: kuairand_splits(load_kuairand(d))}
    assert sorted(directories) == sorted(PUBLIC_SOURCES)
    for name, directory in directories.items():
        config = apply_overrides(get_preset(name), [f"data.data_dir={directory}"])
        assert config.data.source == name and config.data.split == "published"
        data = load_data(config)
        splits = public_source(name).split(data, config.data.seed)
        want = expected[name](directory)
        assert splits.sizes() == want.sizes(), name
        assert splits.test["_line"].tolist() == want.test["_line"].tolist(), name
        with pytest.raises(ValueError, match="needs a directory"):
            load_data(apply_overrides(config, ["data.data_dir=null"]))
