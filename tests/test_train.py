"""Training runs: what a run writes, exact resume, Ctrl-C, the CLI, torchrun, flat memory."""

import json
import os
import signal
import subprocess
import sys

import pytest
import torch

from conftest import ROOT
from fadercli import toyfaces
from fadercli.data import prepare
from fadercli.train import TrainConfig, lambda_schedule, load_checkpoint, lr_scale, train
from fadercli.weights import load_model

TINY = dict(img_size=32, init_fm=8, max_fm=32, n_layers=3, hid_dim=32, batch_size=8, clf_steps=5, previews=3)


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("toy")
    toyfaces.write_dataset(folder, 48, size=32, seed=5, attributes=("Eyeglasses", "Smiling"))
    return folder


@pytest.fixture
def dataset(toy_data, tmp_path):
    return prepare(toy_data, img_size=32, cache_root=tmp_path / "cache", val_fraction=0.2)


def _weights(run):
    return load_model(run / "model.safetensors").model.state_dict()


def test_a_run_writes_model_checkpoint_metrics_and_previews(dataset, tmp_path):
    run = tmp_path / "run"
    config = TrainConfig(**TINY, max_steps=6, checkpoint_every=3, lambda_clf=0.5)
    result = train(dataset, config, run, device=torch.device("cpu"), show_progress=False, log=lambda m: None)
    assert result.step == 6 and not result.interrupted
    model = load_model(run / "model.safetensors", kind="fader")
    assert model.attributes.names == ["Eyeglasses", "Smiling"]
    assert model.training["steps"] == 6
    assert set(model.training["evaluation"]["swap_accuracy"]) == {"Eyeglasses", "Smiling"}
    state = torch.load(run / "checkpoint.pt", weights_only=True)  # no pickled code needed
    assert state["step"] == 6 and state["config"]["max_steps"] == 6
    assert set(state) >= {"ae", "dis", "opt_ae", "opt_dis", "rng_cpu", "model_config"}
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    evaluation = records[-1]["eval"]
    assert 0 <= evaluation["swap_accuracy"]["Smiling"] <= 1 and evaluation["psnr"] > 5
    assert evaluation["n_faces"] == len(dataset.val)
    judge = load_model(run / "classifier.safetensors", kind="classifier")
    guide = load_model(run / "guide.safetensors", kind="classifier")  # behind the classifier loss
    assert judge.attributes.names == guide.attributes.names == ["Eyeglasses", "Smiling"]
    assert judge.config != guide.config  # the run is not scored by the classifier it learned to please
    previews = sorted(p.name for p in (run / "previews").iterdir())
    assert previews == ["step_000003.png", "step_000006.png"]
    assert json.loads((run / "run.json").read_text())["config"]["img_size"] == 32
    assert not [p for p in run.iterdir() if p.name.startswith(".")]  # no temp files left


def test_learning_rate_schedules():
    assert [lr_scale(s, 100, "constant") for s in (0, 50, 100)] == [1, 1, 1]
    assert [lr_scale(s, 100, "cosine") for s in (0, 50, 100)] == pytest.approx([1, 0.55, 0.1])
    assert lr_scale(7, None, "cosine") == 1  # run length not measured yet


def test_lambda_rises_linearly_over_the_ramp():
    values = [lambda_schedule(step, 8, 0.01, 0.5) for step in (0, 2, 4, 6)]
    assert values == pytest.approx([0, 0.005, 0.01, 0.01])
    assert lambda_schedule(5, None, 0.01, 0.5) == 0  # run length not measured yet
    assert lambda_schedule(0, 8, 0.01, 0) == 0.01


def test_resume_after_ctrl_c_matches_an_uninterrupted_run(dataset, tmp_path):
    config = TrainConfig(**TINY, max_steps=8, lambda_clf=0.5, lambda_lat_dis=0.01)
    quiet = dict(device=torch.device("cpu"), show_progress=False, log=lambda m: None)
    train(dataset, config, tmp_path / "straight", **quiet)

    def interrupt(step, metrics):
        if step == 3:
            os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C does: the step finishes, then it stops

    stopped = train(dataset, config, tmp_path / "split", on_step=interrupt, **quiet)
    assert stopped.interrupted and stopped.step == 3
    assert load_checkpoint(tmp_path / "split" / "checkpoint.pt")["step"] == 3
    resumed = train(dataset, config, tmp_path / "split", resume=True, **quiet)
    assert resumed.step == 8
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "split")
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-6), name
    assert resumed.metrics["swap_accuracy"] == pytest.approx(
        load_model(tmp_path / "straight" / "model.safetensors").training["evaluation"]["swap_accuracy"]
    )


def test_cli_train_eval_and_refusals(toy_data, tmp_path, run_cli, monkeypatch):
    monkeypatch.setenv("FADER_HOME", str(tmp_path / "home"))
    run = tmp_path / "run"
    args = ["train", toy_data, "--img-size", "32", "--max-steps", "4", "--batch-size", "8", "--init-fm", "8",
            "--max-fm", "32", "--n-layers", "3", "--clf-steps", "5", "--out", run, "--device", "cpu", "--no-align"]
    result = run_cli(*args, "--json", "--quiet")
    assert result.exit_code == 0, result.stderr
    scores = json.loads(result.stdout)
    assert set(scores["swap_accuracy"]) == {"Eyeglasses", "Smiling"}
    evaluation = run_cli("eval", run, "--json")
    assert evaluation.exit_code == 0, evaluation.stderr
    assert json.loads(evaluation.stdout)["swap_accuracy"] == scores["swap_accuracy"]
    from_checkpoint = run_cli("info", run / "checkpoint.pt", "--json")
    assert from_checkpoint.exit_code == 0, from_checkpoint.stderr
    assert json.loads(from_checkpoint.stdout)["training"]["steps"] == 4
    again = run_cli(*args)
    assert again.exit_code == 7 and "--resume" in again.stderr
    nothing = run_cli("train", toy_data, "--out", tmp_path / "fresh", "--resume", "--max-steps", "2")
    assert nothing.exit_code == 3 and "nothing to resume" in nothing.stderr
    unknown = run_cli("train", toy_data, "--attr", "Eyeglases", "--out", tmp_path / "x", "--max-steps", "2")
    assert unknown.exit_code == 2 and "Did you mean Eyeglasses" in unknown.stderr
    bad_size = run_cli("train", toy_data, "--img-size", "48", "--out", tmp_path / "y", "--max-steps", "2")
    assert bad_size.exit_code == 2
    no_cuda = run_cli("train", toy_data, "--device", "cuda", "--out", tmp_path / "z", "--max-steps", "2")
    if not torch.cuda.is_available():
        assert no_cuda.exit_code == 8 and "CUDA" in no_cuda.stderr


def test_torchrun_two_processes_on_cpu_write_one_model(toy_data, tmp_path):
    run = tmp_path / "ddp"
    env = {**os.environ, "FADER_HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "fadercli",
         "train", str(toy_data), "--img-size", "32", "--max-steps", "3", "--batch-size", "8", "--init-fm", "8",
         "--max-fm", "32", "--n-layers", "3", "--clf-steps", "3", "--out", str(run), "--device", "cpu", "--json",
         "--no-align"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert load_model(run / "model.safetensors").training["steps"] == 3
    assert load_model(run / "model.safetensors").training["batch_size"] == 8  # shared by the two ranks
    assert result.stdout.count('"swap_accuracy"') == 1  # rank 0 alone reports


def test_peak_memory_does_not_grow_with_the_dataset(tmp_path):
    """A training run over 10x the images (+354 MB of pixels, 256 px) peaks within 10% of the same
    run over 1x (~830 MB): the cache is read, not loaded. Peaks wander by a few tens of MB from run
    to run (the allocator); a loaded dataset would add hundreds."""
    peaks = {}
    for n in (200, 2000):
        result = subprocess.run(
            [sys.executable, str(ROOT / "benchmarks" / "rss_probe.py"), str(n), str(tmp_path / str(n))],
            capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        peaks[n] = int(result.stdout.split()[-1])  # KiB
    assert peaks[2000] < peaks[200] * 1.1, peaks
