"""The second half in the grader's commands: `train` and `sample` use the parts of exercises 10-14 (the
learner's once that exercise passes, the reference's or the given code until then) and the run's header says
whose. The first tests run the reference in this process; the last runs a learner's project in a subprocess."""

import json
import subprocess
import sys

import pytest
import torch

from conftest import learner_env
from grader.training import checkpoint
from grader.training import sample as sample_cmd
from grader.training import train as train_cmd
from grader.training.checkpoint import FILENAME


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    lines = [f"{name}: the {adj} {noun} doth {verb} the {noun2}." for name, adj, noun, verb, noun2 in zip(
        ["ROMEO", "JULIET", "NURSE", "MERCUTIO"] * 40, ["fair", "dark", "sweet", "cold", "brave"] * 32,
        ["moon", "night", "rose", "sword"] * 40, ["love", "fear", "greet", "mock", "seek"] * 32,
        ["day", "house", "name", "heart"] * 40)]
    path = tmp_path_factory.mktemp("data") / "text.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def tiny(text_file, out, *extra, preset="tiny"):
    return ["--preset", preset, "--data", str(text_file), "--out", str(out), "--n-layer", "1", "--n-head", "2",
            "--n-embd", "16", "--block-size", "16", "--batch-size", "4", "--max-steps", "6", "--warmup-steps", "2",
            "--eval-interval", "3", "--eval-iters", "2", "--sample-tokens", "0", "--final-sample-tokens", "8",
            "--threads", "1", *extra]


def train(capsys, *argv):
    code = train_cmd.main(list(argv))
    captured = capsys.readouterr()
    assert code == 0, captured.out + captured.err
    return captured.out + captured.err


def test_a_bpe_tokenizer_is_trained_kept_in_the_run_and_reused_by_resume_and_sample(text_file, tmp_path, capsys):
    out = tmp_path / "run"
    text = train(capsys, "--impl", "solutions", *tiny(text_file, out, "--tokenizer", "bpe", "--vocab-size", "300"))
    assert "byte-level BPE, 300 tokens, trained by the reference's train_bpe" in text, text
    saved = json.loads((out / "tokenizer.json").read_text(encoding="utf-8"))
    ckpt = checkpoint.load(out / FILENAME)
    assert ckpt["tokenizer"]["kind"] == "bpe" and ckpt["config"]["vocab_size"] == 300
    assert len(saved["merges"]) == 300 - 256 - len(saved["special_tokens"]), "tokenizer.json holds the merges"

    text = train(capsys, "--resume", "--out", str(out), "--max-steps", "8", "--threads", "1")
    assert "the byte-level BPE this run trained" in text and "Training a byte-level BPE" not in text, text
    assert checkpoint.load(out / FILENAME)["step"] == 8

    code = sample_cmd.main(["--out", str(out), "--prompt", "ROMEO:", "--max-new-tokens", "12", "--seed", "0",
                            "--threads", "1"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert printed.out.startswith("ROMEO:"), printed.out


def test_muon_steps_the_blocks_matrices_and_a_resumed_run_keeps_it(text_file, tmp_path, capsys):
    out = tmp_path / "run"
    text = train(capsys, "--impl", "solutions", *tiny(text_file, out, "--optimizer", "muon"))
    assert "optimizer: Muon for the blocks' matrices" in text and "the reference's configure_muon" in text, text
    ckpt = checkpoint.load(out / FILENAME)
    assert ckpt["settings"]["optimizer"] == "muon"
    assert any("momentum_buffer" in state for state in ckpt["optimizer"]["state"].values())

    code = train_cmd.main(["--resume", "--out", str(out), "--max-steps", "8", "--optimizer", "adamw"])
    assert code == 2 and "keeps its optimizer" in capsys.readouterr().err
    text = train(capsys, "--resume", "--out", str(out), "--max-steps", "8", "--threads", "1")
    assert "Muon" in text and checkpoint.load(out / FILENAME)["step"] == 8


def test_the_reference_trains_through_flash_attention_with_the_same_loss(text_file, tmp_path, capsys, monkeypatch):
    text = train(capsys, "--impl", "solutions", *tiny(text_file, tmp_path / "sdpa"))
    assert "attention: SDPA through the reference's flash_attention (exercise 14)" in text, text
    sdpa = checkpoint.load(tmp_path / "sdpa" / FILENAME)["model"]

    from grader.training import choices
    monkeypatch.setattr(choices, "choose_attention", lambda run: setattr(run, "flash", None))
    train(capsys, "--impl", "solutions", *tiny(text_file, tmp_path / "handwritten"))
    handwritten = checkpoint.load(tmp_path / "handwritten" / FILENAME)["model"]
    for name, weight in sdpa.items():
        torch.testing.assert_close(weight, handwritten[name], atol=1e-4, rtol=1e-4, msg=name)


def test_sample_uses_the_kv_cache_and_prints_tokens_per_second(text_file, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    train(capsys, "--impl", "solutions", *tiny(text_file, out))
    asked = []
    real_load_parts = sample_cmd.load_parts

    def load_parts(impl):  # the real parts, with generate's use_cache recorded
        parts = real_load_parts(impl)
        generate = parts.generate

        def recording(*args, **kwargs):
            asked.append(kwargs.get("use_cache", False))
            return generate(*args, **kwargs)

        parts.generate = recording
        return parts

    monkeypatch.setattr(sample_cmd, "load_parts", load_parts)
    code = sample_cmd.main(["--out", str(out), "--max-new-tokens", "40", "--seed", "0", "--threads", "1"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert asked and all(asked), f"generate was called with use_cache {asked}"
    assert "tokens/s, with the reference's KV cache" in printed.err, printed.err


def test_a_muon_preset_trains_with_adamw_until_the_learners_12_passes(text_file, tmp_path):
    """cpu-modern trains with Muon, but a learner's run uses it only once their 12 passes (checked, recorded in
    .kata/passed.json); until then AdamW, and the header says why."""
    from grader.sandbox import make_project

    project = make_project(tmp_path, {})  # exercises/ is the reference: every exercise is done
    env = learner_env(COLUMNS="250")

    def run(*command):
        proc = subprocess.run([sys.executable, "-m", "grader", *command], cwd=project, capture_output=True,
                              text=True, env=env)
        return proc.returncode, proc.stdout + proc.stderr

    argv = tiny(text_file, tmp_path / "before", preset="cpu-modern")
    code, text = run("train", *argv)
    assert code == 0, text
    assert "optimizer: AdamW (07 configure_optimizers); this preset trains with Muon once exercise 12 passes" in text
    assert checkpoint.load(tmp_path / "before" / FILENAME)["settings"]["optimizer"] == "adamw"

    code, text = run("check", "12")
    assert code == 0, text
    argv = tiny(text_file, tmp_path / "after", preset="cpu-modern")
    code, text = run("train", *argv)
    assert code == 0, text
    assert "configure_muon" in text and "yours (12 muon passes)" in text, text
    assert checkpoint.load(tmp_path / "after" / FILENAME)["settings"]["optimizer"] == "muon"


def test_a_run_trained_with_swaps_samples_with_them_after_unswap(text_file, tmp_path):
    """A learner who swapped everything in, trained, then unswapped: the run still samples, with the modules it
    was trained with, and says so; swaps.txt is not touched."""
    from grader.registry import MODULE_EXERCISES
    from grader.sandbox import make_project

    project = make_project(tmp_path, {}, exercises="fresh")
    swap_file = project / "swaps.txt"
    swap_file.write_text("".join(f"{ex.id}\n" for ex in MODULE_EXERCISES), encoding="utf-8")
    env = learner_env(COLUMNS="250")

    def run(*command):
        proc = subprocess.run([sys.executable, "-m", "grader", *command], cwd=project, capture_output=True,
                              text=True, env=env)
        return proc.returncode, proc.stdout + proc.stderr

    code, text = run("train", *tiny(text_file, tmp_path / "run"))
    assert code == 0, text
    swap_file.unlink()  # `python -m grader unswap all`
    code, text = run("sample", "--out", str(tmp_path / "run"), "--max-new-tokens", "8", "--threads", "1")
    assert code == 0, text
    assert "This run trained with 01, 02, 03" in text and "swapped in" in text, text
    assert not swap_file.exists()
