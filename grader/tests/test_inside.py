"""trace, inspect, experiment, train --stats and the notebook API (grader/inside/, grader/training/stats.py).

Tiny models (1-2 layers of 16-32 channels), a few steps, the reference parts in this process; a learner's
tree with exercises missing is a sandbox copy (grader/sandbox.py) run as a subprocess. Each figure a
command writes is opened and checked for its size and that it is not blank.
"""

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import learner_env
from grader.inside import experiment, inspect_run, trace
from grader.registry import ROOT
from grader.training import train as train_cmd

WORDS = "to be or not that is the question whether tis nobler in the mind to suffer the slings and arrows"


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    g = torch.Generator().manual_seed(0)
    words = WORDS.split()
    out = []
    while sum(map(len, out)) < 6000:
        w = words[int(torch.randint(len(words), (1,), generator=g))]
        out.append(w.upper() + ":\n" if int(torch.randint(12, (1,), generator=g)) == 0 else w + " ")
    path = tmp_path_factory.mktemp("data") / "text.txt"
    path.write_text("".join(out), encoding="utf-8")
    return path


def console():
    from rich.console import Console

    buffer = io.StringIO()
    return buffer, Console(file=buffer, width=150, force_terminal=False, color_system=None, soft_wrap=False)


def assert_figure(path: Path, min_width=400, min_height=300):
    """A PNG of a reasonable size with something drawn on it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.image as mpimg

    assert path.is_file(), f"{path} was not written"
    pixels = mpimg.imread(path)
    height, width = pixels.shape[:2]
    assert width >= min_width and height >= min_height, f"{path} is only {width}x{height} pixels"
    assert float(pixels[..., :3].std()) > 0.05, f"{path} looks blank"


def tiny_train(text_file, out, *extra):
    argv = ["--preset", "tiny", "--impl", "solutions", "--data", str(text_file), "--out", str(out), "--n-layer", "2",
            "--n-head", "2", "--n-embd", "16", "--block-size", "16", "--batch-size", "4", "--max-steps", "8",
            "--warmup-steps", "2", "--eval-interval", "2", "--eval-iters", "2", "--sample-tokens", "0",
            "--final-sample-tokens", "0", "--threads", "1", *extra]
    return train_cmd.main(argv)


def in_sandbox(tmp_path, files, command, fresh=()):
    """Run `python -m grader <command>` in a copy of the project whose exercises/ is the reference, with
    `files` ({name: text}) and the fresh skeletons of `fresh` in place; (process, exercise files before, after)."""
    from grader.sandbox import make_project
    from grader.scaffold import fresh_exercises

    skeletons = fresh_exercises()
    project = make_project(tmp_path, {**{name: skeletons[name] for name in fresh}, **files})
    before = {p.name: p.read_bytes() for p in (project / "exercises").glob("*.py")}

    env = learner_env(COLUMNS="250", PYTHONIOENCODING="utf-8")  # no wrapping inside the lines looked for
    proc = subprocess.run([sys.executable, "-m", "grader", *command], cwd=project, capture_output=True, text=True,
                          env=env)
    after = {p.name: p.read_bytes() for p in (project / "exercises").glob("*.py")}
    return proc, before, after


# --- trace ------------------------------------------------------------------------------------------------


def test_trace_of_the_reference_shows_every_call_with_shapes_and_attention_statistics():
    buffer, con = console()
    args, config, _, ids, prompt = trace.prepare(["--impl", "solutions", "--data", "synthetic", "--prompt", "bade ce",
                                                   "--pos-emb", "rope"])
    code = trace.run(args, config, ids, prompt, con)
    text = buffer.getvalue()
    assert code == 0, text
    for part in ("transformer.h.0", "transformer.h.1", "causal_attention()", "apply_rotary()", "layer_norm()",
                 "lm_head", "(1, 7, 32) float32", "(1, 7, 30) float32", "entropy per head",
                 "scores std", "The forward pass ran through: loss"):
        assert part in text, f"{part!r} is missing from the trace:\n{text}"
    # execution order: the first block's attention before its MLP, block 0 before block 1, lm_head last
    assert text.index("transformer.h.0") < text.index("transformer.h.1") < text.index("lm_head")
    block_0 = text[text.index("transformer.h.0"):text.index("transformer.h.1")]
    assert block_0.index("attn  CausalSelfAttention") < block_0.index("mlp  MLP"), block_0


def test_trace_backward_lists_every_parameter_and_flags_tied_and_missing_gradients():
    buffer, con = console()
    args, config, _, ids, prompt = trace.prepare(["--impl", "solutions", "--data", "synthetic", "--backward"])
    assert trace.run(args, config, ids, prompt, con) == 0
    text = buffer.getvalue()
    assert "transformer.h.1.mlp.c_proj.weight" in text and "also lm_head.weight (tied)" in text
    assert "no gradient" not in text
    outcome = type("Outcome", (), {"grads": [("transformer.wpe.weight", (16, 32), None, []),
                                             ("transformer.h.0.attn.c_proj.bias", (32,), 0.0, [])]})
    buffer, con = console()
    con.print(trace.gradient_table(outcome, True))
    assert "no gradient" in buffer.getvalue() and "exactly 0" in buffer.getvalue()


def test_trace_stops_at_a_todo_in_the_forward_pass_naming_exercise_file_line_and_text(tmp_path):
    import re

    from grader.scaffold import fresh_exercises

    solution = (ROOT / "solutions" / "attention.py").read_text(encoding="utf-8")
    skeleton = fresh_exercises()["attention.py"]
    body = lambda text: re.search(r"^def causal_attention\(.*?(?=^def )", text, re.S | re.M).group(0)  # noqa: E731
    partial = solution.replace(body(solution), body(skeleton))
    proc, before, after = in_sandbox(tmp_path, {"attention.py": partial}, ["trace", "--data", "synthetic"])
    out = proc.stdout
    assert proc.returncode == 1, proc.stderr + out
    line = next(i for i, text in enumerate(partial.splitlines(), start=1) if 'raise NotImplementedError("03' in text)
    assert f"Next to write: 03 attention (causal_attention) — exercises/attention.py, line {line}" in out, out
    assert "# TODO: scores = q @ kᵀ / sqrt(D)" in out and "✗ NotImplementedError" in out
    assert "q (1, 2, 8, 16) float32" in out  # the shapes that went in
    assert "transformer.h.0" in out and "transformer.h.1" not in out  # it stopped there
    assert "python -m grader swap 03" in out
    assert before == after


def test_trace_stops_in_the_build_and_names_every_unfinished_part_at_once(tmp_path):
    proc, before, after = in_sandbox(tmp_path, {}, ["trace", "--data", "synthetic", "--backward"],
                                     fresh=("attention.py", "mlp.py", "optim.py"))
    out = proc.stdout
    assert proc.returncode == 1, proc.stderr + out
    assert "Next to write: 03 attention (CausalSelfAttention.__init__)" in out, out
    assert "Block.__init__" in out  # the chain of constructors that led there
    assert "03 attention" in out and "04 mlp" in out and "07 optim" not in out  # optim: not in a forward pass
    assert "python -m grader swap 03 04" in out
    assert before == after


def test_trace_stops_at_an_error_with_the_shapes_that_went_in(tmp_path):
    mlp = (ROOT / "solutions" / "mlp.py").read_text(encoding="utf-8")
    bug = mlp.replace("self.c_proj = nn.Linear(config.mlp_hidden, config.n_embd", "self.c_proj = nn.Linear("
                      "config.n_embd, config.n_embd")
    assert bug != mlp
    proc, _, _ = in_sandbox(tmp_path, {"mlp.py": bug}, ["trace", "--data", "synthetic"])
    out = proc.stdout
    assert proc.returncode == 1, proc.stderr + out
    assert "stopped at an error: RuntimeError" in out and "exercises/mlp.py" in out
    assert "what went in: input (1, 8, 128) float32" in out and "Linear(in_features=32, out_features=32" in out


# --- bad input: one sentence, exit 2, before torch --------------------------------------------------------


def test_bad_input_is_one_sentence_and_exit_2_before_torch_is_imported(tmp_path):
    (tmp_path / "empty_run").mkdir()
    script = f"""
import sys
from grader.inside import experiment, inspect_run, trace
cases = [
    (trace.main, ["--data", "synthetic", "--prompt", "héllo"]),
    (trace.main, ["--data", "synthetic", "--preset", "huge"]),
    (trace.main, ["--data", "synthetic", "--n-head", "3"]),
    (trace.main, ["--data", "synthetic", "--prompt", "ba" * 40]),
    (inspect_run.main, [{str(tmp_path / "empty_run")!r}]),
    (inspect_run.main, [{str(tmp_path / "nowhere")!r}]),
    (experiment.main, ["--vary", "learning_rate=1,2"]),
    (experiment.main, ["--vary", "n_layer=2,two"]),
    (experiment.main, ["--vary", "lr=1e-3", "--vary", "n_layer=2"]),
    (experiment.main, ["--vary", "pos_emb=learned,sideways"]),
]
for main, argv in cases:
    print(main(argv))
print("torch" in sys.modules)
"""
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True)
    codes = proc.stdout.split()
    assert codes[:-1] == ["2"] * 10, proc.stdout + proc.stderr
    assert codes[-1] == "False", "torch was imported before the arguments were checked"
    sentences = proc.stderr.strip().splitlines()
    assert len(sentences) == 10, proc.stderr
    assert "lack ('é')" in sentences[0] and "no preset 'huge'" in sentences[1] and "divisible" in sentences[2]
    assert "block_size" in sentences[3] and "holds no checkpoint" in sentences[4] and "no run folder" in sentences[5]
    assert "no setting 'learning_rate'" in sentences[6] and "'two' is not a valid int" in sentences[7]
    assert "one setting at a time" in sentences[8] and "sideways" in sentences[9]
    assert not (tmp_path / "empty_run" / "inspect").exists()


# --- train --stats and inspect ----------------------------------------------------------------------------


def test_stats_are_recorded_per_layer_at_every_evaluation_without_changing_the_training(text_file, tmp_path):
    assert tiny_train(text_file, tmp_path / "plain") == 0
    assert tiny_train(text_file, tmp_path / "stats", "--stats") == 0
    plain = json.loads((tmp_path / "plain" / "metrics.json").read_text())
    stats_run = json.loads((tmp_path / "stats" / "metrics.json").read_text())
    assert plain["train"] == stats_run["train"], "--stats changed the training"
    assert "stats" not in plain
    stats = stats_run["stats"]
    assert stats["layers"] == ["transformer.h.0", "transformer.h.1"]
    assert [r["step"] for r in stats["records"]] == [0, 2, 4, 6, 8]
    for r in stats["records"]:
        assert len(r["act_mean"]) == len(r["act_std"]) == len(r["grad_norm"]) == 2
        assert all(v > 0 for v in r["act_std"] + r["grad_norm"])
    assert all(len(r["update_log10"]) == 2 and -6 < r["update_log10"][0] < 0 for r in stats["records"][:-1])
    assert stats["records"][-1]["update_log10"] is None  # no step follows the last evaluation
    assert stats["histograms"]["step"] == 8 and len(stats["histograms"]["activations"]["counts"]) == 2


def test_inspect_writes_attention_maps_and_statistics_and_prints_topk_and_parameters(text_file, tmp_path):
    run = tmp_path / "run"
    assert tiny_train(text_file, run, "--stats") == 0
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    buffer, con = console()
    code = inspect_run.main([str(run), "--prompt", "TO BE:\nor not", "--top-k", "5"], console=con)
    text = buffer.getvalue()
    assert code == 0, text
    assert "The next token after 'TO BE:\\nor not'" in text and "entropy" in text
    assert "transformer.h.1.attn" in text and "shares transformer.wte.weight (tied)" in text
    for name in ("attention.png", "stats.png", "histograms.png"):
        assert f"wrote {run / 'inspect' / name}" in text
        assert_figure(run / "inspect" / name)
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before  # the run is only read


def test_inspect_of_a_run_without_stats_says_how_to_get_them(text_file, tmp_path):
    run = tmp_path / "run"
    assert tiny_train(text_file, run) == 0
    buffer, con = console()
    assert inspect_run.main([str(run), "--figures", str(tmp_path / "figs")], console=con) == 0
    assert "trained with --stats" in buffer.getvalue()
    assert_figure(tmp_path / "figs" / "attention.png")
    assert not (tmp_path / "figs" / "stats.png").exists()


def test_inspect_refuses_a_prompt_outside_the_vocabulary(text_file, tmp_path, capsys):
    run = tmp_path / "run"
    assert tiny_train(text_file, run) == 0
    capsys.readouterr()
    assert inspect_run.main([str(run), "--prompt", "zebra ∑"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "vocabulary lacks" in err
    assert not (run / "inspect").exists()


# --- experiment ---------------------------------------------------------------------------------------------


def experiment_args(text_file, out, *vary):
    return ["--impl", "solutions", "--max-steps", "6", "--out", str(out), "--data", str(text_file), "--n-layer", "1",
            "--n-embd", "16", "--block-size", "16", "--batch-size", "4", "--eval-iters", "2", "--threads", "1", *vary]


def test_experiment_compares_runs_on_one_figure_and_skips_finished_runs(text_file, tmp_path, monkeypatch):
    out = tmp_path / "exp"
    buffer, con = console()
    assert experiment.main(experiment_args(text_file, out, "--vary", "mlp=gelu,swiglu"), console=con) == 0
    text = buffer.getvalue()
    assert "mlp=gelu" in text and "mlp=swiglu" in text and "val loss" in text and "wall time" in text
    summary = json.loads((out / "experiment.json").read_text())
    runs = {r["label"]: r for r in summary["runs"]}
    assert runs["mlp=swiglu"]["parameters"] > runs["mlp=gelu"]["parameters"]  # swiglu's c_fc is twice as wide
    assert all(r["steps"] == 6 and r["status"] == "done" for r in runs.values())
    assert_figure(out / "experiment.png")
    metrics = json.loads((out / "mlp=gelu" / "metrics.json").read_text())
    assert len(metrics["eval"]) >= 5  # the evaluation interval follows --max-steps: a short run gets a curve

    def must_not_train(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(experiment, "run_one", must_not_train)
    assert experiment.main(experiment_args(text_file, out, "--vary", "mlp=gelu,swiglu"), console=console()[1]) == 0


def test_experiment_stopped_keeps_what_finished_and_refuses_a_folder_with_other_settings(text_file, tmp_path,
                                                                                        monkeypatch, capsys):
    out = tmp_path / "exp"
    real = train_cmd.main
    calls = []

    def train_then_stop(argv):
        calls.append(argv)
        return real(argv) if len(calls) == 1 else 130  # Ctrl-C during the second run

    monkeypatch.setattr(train_cmd, "main", train_then_stop)
    assert experiment.main(experiment_args(text_file, out, "--vary", "lr=1e-3,3e-3"), console=console()[1]) == 130
    assert (out / "lr=1e-3" / "ckpt.pt").is_file()
    assert json.loads((out / "experiment.json").read_text())["runs"][1]["status"] == "stopped"
    monkeypatch.setattr(train_cmd, "main", real)
    capsys.readouterr()
    stored = (out / "lr=1e-3" / "metrics.json").read_bytes()
    code = experiment.main(experiment_args(text_file, out, "--vary", "lr=1e-3", "--batch-size", "2"))
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "other settings" in err, err
    assert (out / "lr=1e-3" / "metrics.json").read_bytes() == stored


# --- the loss figure and the evaluation interval -------------------------------------------------------------


def test_a_short_run_evaluates_about_ten_times_unless_told():
    from grader.training.presets import preset
    from grader.training.run import resolve_settings

    tiny = preset("tiny")
    assert resolve_settings(tiny, None, {"max_steps": 60}).eval_interval == 6
    assert resolve_settings(tiny, None, {"max_steps": 60, "eval_interval": 30}).eval_interval == 30
    assert resolve_settings(tiny, None, {"max_steps": 5000}).eval_interval == tiny["train"]["eval_interval"]
    assert resolve_settings(tiny, None, {}).eval_interval == tiny["train"]["eval_interval"]


def test_the_loss_figure_draws_markers_where_evaluations_are_few(tmp_path):
    from grader.training.report import plot_losses

    import matplotlib.pyplot as plt

    drawn = []
    real_plot = plt.Axes.plot

    def spy(self, *args, **kwargs):
        drawn.append(args[2] if len(args) > 2 and isinstance(args[2], str) else "-")
        return real_plot(self, *args, **kwargs)

    metrics = dict(train=[[s, 4.0 - s / 300] for s in range(300)],
                   eval=[dict(step=0, train_loss=4.0, val_loss=4.1), dict(step=300, train_loss=3.0, val_loss=3.2)])
    plt.Axes.plot = spy
    try:
        plot_losses(metrics, tmp_path / "loss.png", title="t")
    finally:
        plt.Axes.plot = real_plot
    assert drawn[-2:] == ["o", "o"], drawn  # two evaluations 300 steps apart: points, no line between them
    assert_figure(tmp_path / "loss.png")


# --- the command line and the notebook ----------------------------------------------------------------------


def test_the_grader_knows_the_new_commands(capsys):
    from grader.cli import main

    for command in ("trace", "inspect", "experiment"):
        assert main([command, "--help"]) == 0
        assert command in capsys.readouterr().out


def test_the_notebook_functions_render_with_rich_in_jupyter(tmp_path):
    nbformat = pytest.importorskip("nbformat", reason="nbformat/nbclient/ipykernel are not installed")
    nbclient = pytest.importorskip("nbclient", reason="nbformat/nbclient/ipykernel are not installed")
    pytest.importorskip("ipykernel", reason="nbformat/nbclient/ipykernel are not installed")
    cells = ["import grader", 'grader.hint("01", all=True)',
             'grader.trace(impl="solutions", prompt="ROMEO:", backward=True)']
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(ROOT)}}).execute()
    outputs = [o for cell in notebook.cells for o in cell.get("outputs", [])]
    html = "".join(o.get("data", {}).get("text/html", "") for o in outputs)
    assert "Hints for 01 norms" in html and "Trace of the reference GPT" in html and "grad norm" in html
    assert not [o for o in outputs if o.get("output_type") == "error"]
