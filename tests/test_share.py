"""Sharing and watching models: hf:// models through a local Hub, `fader export`'s card checked field by
field, `fader push` with the upload replaced at huggingface_hub's boundary, and training curves
(`fader plot`'s data, TensorBoard's event files read back with TensorBoard's own reader)."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import DATA, TINY_TRAINING
from hubfake import FakeHub, Repo
from PIL import Image

from fadercli.train.metrics import entries, last_evaluation, read_metrics

ASTRONAUT = DATA / "astronaut.png"
COMMIT = "c0ffee" * 6 + "c0ff"
OTHER = "ba5eba11" * 5


def fader(*args, env: dict) -> subprocess.CompletedProcess:
    """`fader ARGS` in a child: huggingface_hub reads HF_* variables when it is first imported."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    return subprocess.run(
        [sys.executable, "-m", "fadercli", *map(str, args)],
        capture_output=True,
        text=True,
        env={**clean, **env},
        timeout=300,
    )


def one_line(result, code: int, words: str) -> None:
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fader: error: ") and words in lines[0], result.stderr


@pytest.fixture
def hub(toy_runs):
    run = toy_runs["both"]
    files = {name: (run / name).read_bytes() for name in ("model.safetensors", "classifier.safetensors", "README.md")}
    fake = FakeHub(
        {
            "alice/toy": Repo({COMMIT: files}, refs={"main": COMMIT}),
            "alice/private": Repo({COMMIT: files}, refs={"main": COMMIT}, token="hf_secret"),
            "alice/gated": Repo({COMMIT: files}, refs={"main": COMMIT}, token="hf_granted", gated=True),
            "alice/no-weights": Repo({OTHER: {"README.md": b"# nothing\n"}}, refs={"main": OTHER}),
        }
    )
    yield fake
    fake.stop()


def test_hf_models_download_once_then_come_from_the_cache_and_offline(hub, toy_runs, tmp_path):
    env = {"HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hf"), "FADER_HOME": str(tmp_path / "home")}
    edit = ["edit", ASTRONAUT, "--set", "Smiling=1", "--json"]
    first = fader(*edit, "--model", "hf://alice/toy", "-o", tmp_path / "hub.png", env=env)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["models"] == [f"hf://alice/toy@{COMMIT}"]  # the revision, pinned
    assert (hub.gets("model.safetensors"), hub.gets("classifier.safetensors")) == (1, 1)
    snapshot = tmp_path / "hf" / "hub" / "models--alice--toy" / "snapshots" / COMMIT
    assert (snapshot / "model.safetensors").read_bytes() == (toy_runs["both"] / "model.safetensors").read_bytes()
    local = fader(*edit, "--model", toy_runs["both"], "-o", tmp_path / "local.png", env=env)
    assert local.returncode == 0, local.stderr
    assert np.array_equal(np.asarray(Image.open(tmp_path / "hub.png")), np.asarray(Image.open(tmp_path / "local.png")))

    again = fader("info", "hf://alice/toy", "--json", env=env)
    assert again.returncode == 0, again.stderr
    assert hub.gets("model.safetensors") == 1  # the second use asked only whether main moved
    hub.stop()
    unreachable = fader("info", "hf://alice/toy", "--json", env=env)  # no answer: the cache, at once
    assert unreachable.returncode == 0, unreachable.stderr
    assert json.loads(unreachable.stdout)["file"] == str(snapshot / "model.safetensors")
    offline = {**env, "HF_HUB_OFFLINE": "1"}
    cached = fader(*edit, "--model", f"hf://alice/toy@{COMMIT}", "-o", tmp_path / "offline.png", env=offline)
    assert cached.returncode == 0, cached.stderr
    assert np.array_equal(
        np.asarray(Image.open(tmp_path / "offline.png")), np.asarray(Image.open(tmp_path / "hub.png"))
    )
    one_line(fader("info", "hf://alice/other", env=offline), 6, "not in the Hub cache")


def test_an_unreachable_hub_is_one_line_at_once_for_every_command(tmp_path):
    """No network and nothing cached: each command that takes an hf:// model says so in its one line,
    without huggingface_hub's retries with back-off (half a minute, eleven lines of its own)."""
    with socket.socket() as closed:  # bound, never listening: every connection is refused
        closed.bind(("127.0.0.1", 0))
        env = {"HF_ENDPOINT": f"http://127.0.0.1:{closed.getsockname()[1]}", "HF_HOME": str(tmp_path / "hf")}
        env["FADER_HOME"] = str(tmp_path / "home")
        model = "hf://alice/toy"
        for command in (
            ["info", model],
            ["edit", ASTRONAUT, "--set", "Smiling=1", "--model", model, "-o", tmp_path / "out.png"],
            ["sweep", ASTRONAUT, "--attr", "Smiling", "--model", model, "-o", tmp_path / "sweep.gif"],
            ["serve", "--model", model, "--port", "0"],
            ["models", "download", model],
        ):
            started = time.monotonic()
            one_line(fader(*command, env=env), 6, f"{model}: not in the Hub cache, and the Hub cannot be reached")
            assert time.monotonic() - started < 10, command  # not a timing: the retries alone wait 23 s
            assert not (tmp_path / "out.png").exists() and not (tmp_path / "sweep.gif").exists()
        said = fader("-v", "info", model, env=env)
        assert "the Hub does not answer" in said.stderr and said.returncode == 6


def test_hf_refusals_are_one_line_with_their_exit_codes(hub, tmp_path):
    env = {"HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hf"), "FADER_HOME": str(tmp_path / "home")}
    one_line(fader("info", "hf://alice/toy@v9", env=env), 5, "no such revision")
    one_line(fader("info", "hf://bob/nothing", env=env), 5, "no such repository")
    one_line(fader("info", "hf://alice/private", env=env), 5, "no such repository")
    one_line(fader("info", "hf://alice/gated", env=env), 5, "gated repository")
    one_line(fader("info", "hf://alice/no-weights", env=env), 5, "has no model.safetensors")
    one_line(fader("info", "hf://alice", env=env), 2, "give hf://OWNER/NAME")
    private = fader("models", "download", "hf://alice/private", env={**env, "HF_TOKEN": "hf_secret"})
    assert private.returncode == 0, private.stderr
    assert private.stdout.strip().endswith(f"snapshots/{COMMIT}/model.safetensors")


def test_export_writes_a_card_whose_figures_are_the_runs(run_cli, toy_runs, tmp_path):
    run, out = toy_runs["both"], tmp_path / "export"
    result = run_cli("export", run, out, "--repo", "alice/toy", "--license", "mit")
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "classifier.safetensors", "model.safetensors"]
    assert (out / "model.safetensors").read_bytes() == (run / "model.safetensors").read_bytes()
    text = (out / "README.md").read_text()
    _, front, body = text.split("---\n", 2)
    meta = yaml.safe_load(front)
    assert meta["license"] == "mit" and meta["library_name"] == "fadercli"
    assert {"fader-networks", "eyeglasses", "smiling"} <= set(meta["tags"])
    fader_meta, report = meta["fader"], last_evaluation(run)["eval"]
    assert fader_meta["attributes"] == ["Eyeglasses", "Smiling"]
    assert fader_meta["slider_ranges"] == {"Eyeglasses": [-1.0, 2.0], "Smiling": [-1.0, 2.0]}
    assert fader_meta["psnr"] == report["psnr"] and fader_meta["swap_accuracy"] == report["swap_accuracy"]
    assert fader_meta["classifier_accuracy"] == report["classifier_accuracy"]
    assert fader_meta["reliable"] == {a: v >= 0.98 for a, v in report["classifier_accuracy"].items()}
    assert "--model hf://alice/toy --set Eyeglasses=1" in body
    for name, by in report["swap_accuracy"].items():
        for direction, share in by.items():
            assert f"| {name} | {direction} | {share:.1%} ±" in body
    assert f"**{report['psnr']:.2f} dB**" in body
    dataset = json.loads((run / "run.json").read_text())["dataset"]
    assert f"{dataset['train']} training and {dataset['validation']} validation images" in body
    shares = dataset["with"]["Smiling"]
    assert f"| Smiling | -1 to 2 | {shares['train']:.1%} / {shares['validation']:.1%} |" in body
    for warning in report["warnings"]:
        assert f"- {warning}" in body
    again = run_cli("export", run, out)
    assert again.exit_code == 7 and "not empty" in again.stderr
    assert run_cli("export", run, tmp_path / "x", "--repo", "not a repo").exit_code == 2


def test_a_run_with_previews_exports_one_and_train_writes_its_card(run_cli, tmp_path):
    from fadercli.train import toyfaces

    toyfaces.write_dataset(tmp_path / "toy", 24, size=32, seed=2, attributes=("Smiling",))
    knobs = [f"--{k.replace('_', '-')}={v}" for k, v in TINY_TRAINING.items() if k != "previews"]
    run = tmp_path / "run"
    trained = run_cli("train", tmp_path / "toy", "--img-size", "32", *knobs, "--out", run, "--no-align", "-q")
    assert trained.exit_code == 0, trained.stderr
    card = (run / "README.md").read_text()
    assert "fader train" in card and "--img-size 32" in card and "--out" in card  # the command, rebuilt
    assert json.loads((run / "run.json").read_text())["command"].startswith("fader train ")
    exported = run_cli("export", run, tmp_path / "out")
    assert exported.exit_code == 0, exported.stderr
    preview = Image.open(tmp_path / "out" / "preview.png")
    latest = max((run / "previews").glob("step_*.png"))
    assert np.array_equal(np.asarray(preview), np.asarray(Image.open(latest)))
    assert "![Validation faces" in (tmp_path / "out" / "README.md").read_text()


def test_push_uploads_the_exported_folder_to_the_named_repository(run_cli, toy_runs, monkeypatch):
    from huggingface_hub import HfApi

    calls = []

    def create_repo(self, repo_id, **kwargs):
        calls.append(("create_repo", repo_id, kwargs))

    def create_branch(self, repo_id, **kwargs):
        calls.append(("create_branch", repo_id, kwargs))

    def upload_folder(self, *, repo_id, folder_path, **kwargs):
        files = {p.name: p.read_bytes() for p in sorted(Path(folder_path).iterdir())}
        calls.append(("upload_folder", repo_id, {**kwargs, "files": files}))
        return type("Commit", (), {"commit_url": f"https://huggingface.co/{repo_id}/commit/{COMMIT}"})()

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "create_branch", create_branch)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    run = toy_runs["both"]
    result = run_cli("push", run, "alice/toy", "--private", "--revision", "v1")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == f"https://huggingface.co/alice/toy/commit/{COMMIT}"
    (_, repo, created), (_, branch_repo, branch), (_, uploaded_to, upload) = calls
    assert (repo, created["private"], created["repo_type"]) == ("alice/toy", True, "model")
    assert (branch_repo, branch["branch"]) == ("alice/toy", "v1")
    assert uploaded_to == "alice/toy" and upload["revision"] == "v1"
    assert sorted(upload["files"]) == ["README.md", "classifier.safetensors", "model.safetensors"]
    assert upload["files"]["model.safetensors"] == (run / "model.safetensors").read_bytes()
    assert b"hf://alice/toy" in upload["files"]["README.md"]
    assert run_cli("push", run, "alice").exit_code == 2


def test_plot_draws_the_runs_values(run_cli, toy_runs, tmp_path):
    from fadercli.train.plot import draw

    run = toy_runs["both"]
    steps = [e for e in entries(run) if "rec_loss" in e]
    figure = draw(read_metrics(run), "toy")
    panels = {
        ax.get_title(): {line.get_label(): line for line in ax.get_lines()} for ax in figure.axes if ax.get_title()
    }
    reconstruction = panels["Losses"]["reconstruction"]
    assert list(reconstruction.get_xdata()) == [e["step"] for e in steps]
    assert list(reconstruction.get_ydata()) == [e["rec_loss"] for e in steps]
    assert list(panels["λ (adversarial weight)"]["lambda"].get_ydata()) == [e["lambda"] for e in steps]
    assert list(panels["Learning rate"]["lr"].get_ydata()) == [e["lr"] for e in steps]
    evaluation = last_evaluation(run)
    assert list(panels["Reconstruction PSNR (validation)"]["psnr"].get_ydata()) == [evaluation["eval"]["psnr"]]
    swap = panels["Swap accuracy per direction (validation)"]
    assert list(swap["Smiling/adding"].get_xdata()) == [evaluation["step"]]
    assert list(swap["Smiling/adding"].get_ydata()) == [evaluation["eval"]["swap_accuracy"]["Smiling"]["adding"]]
    written = run_cli("plot", run, "-o", tmp_path / "curves.png")
    assert written.exit_code == 0, written.stderr
    assert Image.open(tmp_path / "curves.png").format == "PNG"
    assert run_cli("plot", run, "-o", tmp_path / "curves.png").exit_code == 7  # exists
    assert run_cli("plot", tmp_path, "-o", tmp_path / "x.png").exit_code == 3  # no metrics.jsonl


def test_tensorboard_event_files_hold_the_runs_metrics(toy_runs, tmp_path):
    import torch
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from fadercli.train.config import TrainConfig
    from fadercli.train.data import prepare
    from fadercli.train.run import train
    from fadercli.train.toyfaces import write_dataset

    write_dataset(tmp_path / "toy", 24, size=32, seed=3, attributes=("Smiling",))
    dataset = prepare(tmp_path / "toy", img_size=32, cache_root=tmp_path / "cache", val_fraction=0.2)
    config = TrainConfig(img_size=32, **{**TINY_TRAINING, "max_steps": 60})
    run = tmp_path / "run"
    train(dataset, config, run, device=torch.device("cpu"), show_progress=False, log=lambda m: None, tensorboard=True)
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    steps = [e for e in entries(run) if "rec_loss" in e]
    logged = events.Scalars("loss/reconstruction")
    assert [s.step for s in logged] == [e["step"] for e in steps]
    assert [s.value for s in logged] == pytest.approx([e["rec_loss"] for e in steps], rel=1e-6)
    [psnr] = events.Scalars("eval/psnr")
    assert psnr.value == pytest.approx(last_evaluation(run)["eval"]["psnr"], rel=1e-6)
    tags, faces = events.Tags()["scalars"], last_evaluation(run)["eval"]["swap_faces"]["Smiling"]
    assert any(faces.values())
    for direction, n in faces.items():  # a direction with no validation face to edit has no point (no NaN)
        assert (f"eval/swap/Smiling/{direction}" in tags) == (n > 0), direction
    shutil.rmtree(run)
