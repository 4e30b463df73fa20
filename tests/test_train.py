"""Training runs: what a run writes, exact resume, Ctrl-C, the CLI, torchrun, flat memory."""

import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import ROOT

from fadercli.train import toyfaces
from fadercli.train.config import TrainConfig
from fadercli.train.data import prepare
from fadercli.train.loop import Pace, lambda_schedule, lr_scale
from fadercli.train.run import train
from fadercli.weights.checkpoints import load_checkpoint
from fadercli.weights.format import load_model

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
    for name in ("Eyeglasses", "Smiling"):  # per direction: an average would hide the one that fails
        assert set(evaluation["swap_accuracy"][name]) == {"adding", "removing"}
        assert all(0 <= v <= 1 for v in evaluation["swap_accuracy"][name].values())
        assert sum(evaluation["swap_faces"][name].values()) == len(dataset.val)  # every face goes one way
        assert 0 <= evaluation["classifier_accuracy"][name] <= 1
    assert evaluation["psnr"] > 5 and evaluation["n_faces"] == len(dataset.val)
    judge = load_model(run / "classifier.safetensors", kind="classifier")
    guide = load_model(run / "guide.safetensors", kind="classifier")  # behind the classifier loss
    assert judge.attributes.names == guide.attributes.names == ["Eyeglasses", "Smiling"]
    assert judge.config != guide.config  # the run is not scored by the classifier it learned to please
    previews = sorted(p.name for p in (run / "previews").iterdir())
    assert previews == ["step_000003.png", "step_000006.png"]
    assert json.loads((run / "run.json").read_text())["config"]["img_size"] == 32
    assert not [p for p in run.iterdir() if p.name.startswith(".")]  # no temp files left


def test_learning_rate_schedules():
    assert [lr_scale(p, "constant") for p in (0, 0.5, 1)] == [1, 1, 1]
    assert [lr_scale(p, "cosine") for p in (0, 0.5, 1)] == pytest.approx([1, 0.55, 0.1])


def test_lambda_rises_linearly_over_the_ramp():
    values = [lambda_schedule(p, 0.01, 0.5) for p in (0, 0.25, 0.5, 0.75)]
    assert values == pytest.approx([0, 0.005, 0.01, 0.01])
    assert lambda_schedule(0, 0.01, 0) == 0.01


def test_a_step_counted_run_reaches_the_end_of_its_schedules_on_its_last_step():
    pace = Pace(max_steps=5, deadline=math.inf, progress=0.0, now=0.0)
    assert [pace(step, now=step) for step in range(5)] == [
        (0, False),
        (0.25, False),
        (0.5, False),
        (0.75, False),
        (1, True),
    ]


def test_a_timed_run_completes_its_schedules_within_budget_when_its_steps_slow_down(dataset, tmp_path):
    """The speed of the first steps would promise far more steps than the run gets once they slow
    down; the schedules follow the time used, so the run still ends on their last values."""
    config = TrainConfig(
        **TINY, max_minutes=0.4, lr=1e-3, lr_schedule="cosine", lr_final=0.05, lambda_lat_dis=0.01, lambda_clf=0
    )
    times = []

    def slow_down(step, metrics):
        times.append(time.monotonic())
        if step >= 20:  # from here on, each step takes six times as long as the first ones did
            time.sleep(5 * (times[19] - times[4]) / 15)

    started = time.monotonic()
    result = train(
        dataset,
        config,
        tmp_path / "run",
        device=torch.device("cpu"),
        show_progress=False,
        log=lambda m: None,
        on_step=slow_down,
        started=started,
    )
    assert time.monotonic() - started <= 0.4 * 60
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if "lr" in r]
    first_speed = (times[19] - times[4]) / 15
    late_speed = (times[-1] - times[-11]) / 10
    assert late_speed > 3 * first_speed  # the drift is real
    promised = 20 + (times[-1] - times[19]) / first_speed
    assert result.step < 0.5 * promised  # a plan made from the first steps would have ended half-way
    assert steps[-1]["step"] == result.step and steps[-1]["progress"] == 1
    assert steps[-1]["lr"] == pytest.approx(5e-5, rel=1e-9) and steps[-1]["lambda"] == pytest.approx(0.01)
    assert [r["progress"] for r in steps] == sorted(r["progress"] for r in steps)
    assert result.metrics["progress"] == 1 and result.metrics["steps"] == result.step


def test_a_timed_run_spends_its_time_training_the_autoencoder(toy_data, tmp_path):
    """Data, classifiers (within --clf-budget of the time), the final evaluation and saving take
    the rest: at least 85% of a timed run's wall time goes to autoencoder steps, and it ends on time."""
    started = time.monotonic()
    dataset = prepare(toy_data, img_size=32, cache_root=tmp_path / "cache", val_fraction=0.2)
    config = TrainConfig(
        **{**TINY, "clf_steps": 100_000}, max_minutes=0.5, clf_budget=0.08, lambda_clf=0.02, lambda_lat_dis=0.01
    )
    result = train(
        dataset,
        config,
        tmp_path / "run",
        device=torch.device("cpu"),
        show_progress=False,
        log=lambda m: None,
        started=started,
    )
    wall = time.monotonic() - started
    assert wall <= 30 + 1 and result.metrics["progress"] == 1
    assert result.metrics["seconds"] >= 0.85 * wall, (result.metrics["seconds"], wall)
    clf_steps = load_model(tmp_path / "run" / "classifier.safetensors").training["steps"]
    assert 20 <= clf_steps < 100_000  # fitted into its share of the time
    [under] = [w for w in result.metrics["warnings"] if w.startswith("UNDER-TRAINED")]
    assert f"{result.step} steps, where edits at 32 px need about 3,000" in under  # said, not hidden


def test_resume_after_ctrl_c_matches_an_uninterrupted_run(dataset, tmp_path):
    config = TrainConfig(**TINY, max_steps=8, lambda_clf=0.5, lambda_lat_dis=0.01, dis_steps=2)
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
    straight = load_model(tmp_path / "straight" / "model.safetensors").training["evaluation"]["swap_accuracy"]
    assert resumed.metrics["swap_accuracy"] == straight


def test_a_checkpoint_from_before_progress_resumes_where_its_step_horizon_put_it(dataset, tmp_path):
    """Checkpoints of earlier versions kept the step horizon their schedules were laid over."""
    quiet = dict(device=torch.device("cpu"), show_progress=False, log=lambda m: None)
    config = TrainConfig(**TINY, max_steps=3, lambda_clf=0, lambda_lat_dis=0.01)
    train(dataset, config, tmp_path / "run", **quiet)
    path = tmp_path / "run" / "checkpoint.pt"
    state = torch.load(path, weights_only=True)
    del state["progress"]
    state["horizon"] = 6
    torch.save(state, path)
    resumed = train(
        dataset,
        TrainConfig(**{**TINY, "max_steps": 6, "lambda_clf": 0, "lambda_lat_dis": 0.01}),
        tmp_path / "run",
        resume=True,
        **quiet,
    )
    assert resumed.step == 6
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["progress"] for r in records if "lr" in r][-1] == 1


def test_cli_train_eval_and_refusals(toy_data, tmp_path, run_cli, monkeypatch):
    monkeypatch.setenv("FADER_HOME", str(tmp_path / "home"))
    run = tmp_path / "run"
    args = [
        "train",
        toy_data,
        "--img-size",
        "32",
        "--max-steps",
        "4",
        "--batch-size",
        "8",
        "--init-fm",
        "8",
        "--max-fm",
        "32",
        "--n-layers",
        "3",
        "--clf-steps",
        "5",
        "--out",
        run,
        "--device",
        "cpu",
        "--no-align",
    ]
    result = run_cli(*args, "--json", "--quiet")
    assert result.exit_code == 0, result.stderr
    scores = json.loads(result.stdout)
    assert set(scores["swap_accuracy"]) == {"Eyeglasses", "Smiling"}
    evaluation = run_cli("eval", run, "--json")
    assert evaluation.exit_code == 0, evaluation.stderr
    assert json.loads(evaluation.stdout)["swap_accuracy"] == scores["swap_accuracy"]
    from fadercli.train.metrics import last_evaluation, read_metrics

    point = last_evaluation(run)  # `fader eval` adds its point to the run's curves, at the model's step
    assert point["source"] == "fader eval" and point["step"] == 4
    assert [step for step, _ in read_metrics(run).series["eval/psnr"]] == [4, 4]
    text = run_cli("eval", run)
    assert text.exit_code == 0, text.stderr
    for name in ("Eyeglasses", "Smiling"):
        line = next(line for line in text.stdout.splitlines() if line.strip().startswith(f"{name}:"))
        accuracy = scores["classifier_accuracy"][name]
        assert "adding" in line and "removing" in line and f"classifier {accuracy:.1%} right on clean faces" in line
        # A 5-step classifier on 10 validation faces: its verdicts are flagged, with the reason.
        assert ("NOT RELIABLE" in line) == (accuracy < 0.98)
    assert "warning: " in text.stdout and "only" in text.stdout and "validation faces" in text.stdout
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
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            "2",
            "-m",
            "fadercli",
            "train",
            str(toy_data),
            "--img-size",
            "32",
            "--max-steps",
            "3",
            "--batch-size",
            "8",
            "--init-fm",
            "8",
            "--max-fm",
            "32",
            "--n-layers",
            "3",
            "--clf-steps",
            "3",
            "--out",
            str(run),
            "--device",
            "cpu",
            "--json",
            "--no-align",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert load_model(run / "model.safetensors").training["steps"] == 3
    assert load_model(run / "model.safetensors").training["batch_size"] == 8  # shared by the two ranks
    assert result.stdout.count('"swap_accuracy"') == 1  # rank 0 alone reports


def test_peak_memory_does_not_grow_with_the_dataset(tmp_path):
    """A training run over 10x the images (+354 MB of pixels, 256 px) peaks less than half of those
    354 MB above the same run over 1x (~860 MB): the cache is read, not loaded. Peaks wander by up to
    ~90 MB from run to run (the allocator; measured in CI), a loaded dataset would add all 354."""
    peaks = {}
    for n in (200, 2000):
        result = subprocess.run(
            [sys.executable, str(ROOT / "benchmarks" / "rss_probe.py"), str(n), str(tmp_path / str(n))],
            capture_output=True,
            text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
            timeout=300,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        peaks[n] = int(result.stdout.split()[-1])  # KiB
    pixels_kib = 1800 * 256 * 256 * 3 // 1024  # the 1,800 images the larger run adds
    assert peaks[2000] - peaks[200] < pixels_kib / 2, peaks


def test_swap_figures_carry_warnings_when_the_classifier_or_the_sample_is_weak():
    from fadercli.train.evaluate import warnings

    def result(accuracy, faces):
        return {
            "classifier_accuracy": {"Eyeglasses": accuracy},
            "swap_accuracy": {"Eyeglasses": {"adding": 1.0, "removing": 0.9}},
            "swap_faces": {"Eyeglasses": {"adding": faces, "removing": faces}},
        }

    assert warnings(result(0.99, 200)) == []
    (line,) = warnings(result(0.957, 200))
    assert line.startswith("Eyeglasses: swap accuracy NOT RELIABLE") and "95.7%" in line
    few = warnings(result(0.99, 20))
    assert len(few) == 2 and all("only 20 validation faces" in line for line in few)
