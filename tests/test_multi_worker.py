"""`train.distribution=multi_worker` and `parameter_server`: real clusters of
`python -m mtl_tf.train` processes on 127.0.0.1, each bounded in time and
killed at the end of its test, on the tiny preset."""

import json
import socket
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import pytest
import tensorflow as tf
from test_end_to_end import _clean_env

from mtl_tf import experiment
from mtl_tf.config import apply_overrides, get_preset
from mtl_tf.distribution import make_strategy, serve_if_cluster_task

PROCESS_SECONDS = 600
COMPARED = (("hit_rate_at_10", 0.05), ("rating_rmse", 0.05), ("like_auc", 0.05))


class Cluster:
    """Processes of one `TF_CONFIG` cluster on loopback ports; any still
    running when the `with` block ends are killed."""

    def __init__(self, directory: Path, jobs: dict[str, int]):
        self.directory = directory
        ports = _free_ports(sum(jobs.values()))
        self.spec = {job: [f"127.0.0.1:{ports.pop()}" for _ in range(count)]
                     for job, count in jobs.items()}
        self.processes: list[subprocess.Popen] = []
        self._files = ExitStack()

    def start(self, job: str, index: int, *args: str,
              log: str = "") -> subprocess.Popen:
        env = _clean_env()
        env["TF_CONFIG"] = json.dumps({"cluster": self.spec,
                                       "task": {"type": job, "index": index}})
        path = self.directory / f"{log or job}_{index}.log"
        stream = self._files.enter_context(open(path, "w"))
        process = subprocess.Popen(
            [sys.executable, "-m", "mtl_tf.train", "--preset", "tiny",
             "--output-dir", str(self.directory / "run"),
             "--export-dir", str(self.directory / "saved_models"), *args],
            cwd=Path(__file__).parents[1], env=env, stdout=stream,
            stderr=subprocess.STDOUT)
        process.log = path
        self.processes.append(process)
        return process

    def __enter__(self) -> "Cluster":
        return self

    def __exit__(self, *exc) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=60)
        self._files.close()


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:  # All bound at once, so the ports differ.
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def _finished(process: subprocess.Popen, seconds: float = PROCESS_SECONDS) -> int:
    try:
        return process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{process.log.name}: still running after {seconds} s:\n"
                    f"{_tail(process)}")


def _tail(process: subprocess.Popen) -> str:
    return process.log.read_text()[-3000:]


def _summary(directory: Path) -> dict:
    return json.loads((directory / "run" / "metrics.json").read_text())


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> dict:
    """Test metrics of the same preset trained in this one process."""
    return experiment.run(get_preset("tiny"), tmp_path_factory.mktemp("single"),
                          export=False, verbose=0)["metrics"]


def _assert_like(metrics: dict, expected: dict) -> None:
    for name, tolerance in COMPARED:
        assert metrics[name] == pytest.approx(expected[name], abs=tolerance), name


def test_two_workers_train_and_a_killed_worker_resumes_from_the_checkpoint(
        tmp_path, one_process):
    """Two workers train and checkpoint; one is killed in epoch 2, so the job
    stops; the restarted job resumes, completes and exports like one process."""
    args = ("--set", "train.distribution=multi_worker")
    checkpoints = tmp_path / "run" / "checkpoints"
    index = checkpoints / "checkpoint"
    with Cluster(tmp_path, {"worker": 2}) as cluster:
        first = [cluster.start("worker", i, "--quiet", *args, log="first")
                 for i in range(2)]
        deadline = time.monotonic() + PROCESS_SECONDS
        while not index.exists():  # Epoch 1 saved: kill a worker in epoch 2.
            assert time.monotonic() < deadline, "no checkpoint in time"
            assert all(p.poll() is None for p in first), _tail(first[0])
            time.sleep(0.1)
        first[1].kill()
        # Its peer's collectives fail, so the whole job stops...
        assert _finished(first[0], 180) != 0
        assert "ckpt-1" in index.read_text()
        # ...and the restarted job (as a cluster manager would) resumes.
        second = [cluster.start("worker", i, *args, log="restarted")
                  for i in range(2)]
        codes = [_finished(worker) for worker in second]
    assert codes == [0, 0], _tail(second[0]) + _tail(second[1])
    assert "Resuming from the checkpoint after epoch" in second[0].log.read_text()
    summary = _summary(tmp_path)
    assert summary["training"]["resumed"] is True
    _assert_like(summary["metrics"], one_process)
    assert tf.train.latest_checkpoint(str(checkpoints))
    # The other worker's scratch checkpoints are gone; only the chief exports.
    assert not [p for p in checkpoints.iterdir() if p.name.startswith(".worker")]
    assert (tmp_path / "saved_models" / "mtl_tiny" / "1" / "saved_model.pb").exists()
    assert "the chief evaluates and exports" in second[1].log.read_text()


def test_parameter_server_cluster_trains_and_exports(tmp_path, one_process):
    with Cluster(tmp_path, {"chief": 1, "worker": 1, "ps": 1}) as cluster:
        servers = [cluster.start(job, 0, "--quiet",
                                 "--set", "train.distribution=parameter_server")
                   for job in ("ps", "worker")]
        coordinator = cluster.start("chief", 0, "--quiet",
                                    "--set", "train.distribution=parameter_server")
        code = _finished(coordinator)
        assert all(s.poll() is None for s in servers)  # They serve until stopped.
    assert code == 0, _tail(coordinator)
    _assert_like(_summary(tmp_path)["metrics"], one_process)
    assert (tmp_path / "saved_models" / "mtl_tiny" / "1" / "saved_model.pb").exists()


def test_parameter_servers_hold_the_tables_in_shards(tmp_path):
    args = ("--quiet", "--no-export", "--set", "train.distribution=parameter_server",
            "--set", "train.epochs=1", "--set", "train.shard_min_bytes=4096")
    with Cluster(tmp_path, {"chief": 1, "worker": 1, "ps": 2}) as cluster:
        for job, index in (("ps", 0), ("ps", 1), ("worker", 0)):
            cluster.start(job, index, *args)
        coordinator = cluster.start("chief", 0, *args)
        code = _finished(coordinator)
    assert code == 0, _tail(coordinator)
    summary = _summary(tmp_path)
    shards = summary["training"]["variable_shards"]
    # 300 users x 32 floats = 38 KB: two shards of >= 4 KB, one per ps task.
    assert shards["query_tower/user_id_embedding/embeddings"] == 2
    assert shards["candidate_tower/embedding/embeddings"] == 2
    assert summary["metrics"]["hit_rate_at_10"] > 0


def test_cluster_modes_need_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    for mode in ("multi_worker", "parameter_server"):
        train = _train(mode)
        with pytest.raises(ValueError, match="TF_CONFIG environment variable"):
            make_strategy(train)
    monkeypatch.setenv("TF_CONFIG", json.dumps(
        {"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker",
                                                          "index": 0}}))
    train = _train("parameter_server")
    with pytest.raises(ValueError, match=r"lacks \['chief', 'ps'\]"):
        serve_if_cluster_task(train)
    monkeypatch.setenv("TF_CONFIG", json.dumps(
        {"cluster": {"worker": ["127.0.0.1:1"], "ps": ["127.0.0.1:2"]},
         "task": {"type": "worker", "index": 0}}))
    with pytest.raises(ValueError, match="'chief' and 'worker' tasks only"):
        make_strategy(_train("multi_worker"))
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="TF_CONFIG is not JSON"):
        make_strategy(train)


def test_one_process_modes_start_no_server(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", json.dumps(
        {"cluster": {"ps": ["127.0.0.1:1"]}, "task": {"type": "ps", "index": 0}}))
    for mode in ("none", "mirrored", "multi_worker"):
        train = _train(mode)
        assert serve_if_cluster_task(train) is False


def _train(distribution: str):
    return apply_overrides(get_preset("tiny"),
                           [f"train.distribution={distribution}"]).train
