"""The command line, mostly in-process through ``main`` (the real parser and commands), and a few
times as a real process to see exit codes and the absence of tracebacks end to end."""

import subprocess
import sys

import pytest


def process(*argv, stdin="", cwd=None):
    return subprocess.run([sys.executable, "-m", "zeptogpt", *argv], input=stdin, text=True,
                          capture_output=True, cwd=cwd, timeout=120)


def test_params_prints_the_seed_table(cli):
    code, out, _ = cli("params")
    assert code == 0
    assert "  attn(q,k,v,proj): 4 × (6 × 6) = 144" in out
    assert out.strip().endswith("Trainable parameters: 318")
    for variant, n in (("e6-nopos", 276), ("e4-nopos", 136), ("e8-mlp2", 648)):
        assert cli("params", "--variant", variant)[1].strip().endswith(f"parameters: {n}")
    assert cli("params", "--embed", "8", "--no-pos")[1].strip().endswith(": 464")


def test_sort_trains_first_when_nothing_is_saved_then_reuses_it(workdir, cli):
    code, out, err = cli("sort", "caa", "BAC", "ccb")
    assert code == 0
    assert out.splitlines() == ["caa -> aac", "bac -> abc", "ccb -> bcc"]
    assert "training one first" in err
    assert (workdir / "runs" / "e6" / "model.safetensors").is_file()
    code, out, err = cli("sort", "cba", "--trace")
    assert code == 0 and "training" not in err
    assert out.splitlines()[0] == "start [c, b, a, <sep>]  (heads=2, head_dim=3)"
    assert out.splitlines()[-1] == "cba -> abc"


def test_train_eval_trace_with_an_explicit_checkpoint(workdir, cli):
    path = str(workdir / "m.safetensors")
    code, out, _ = cli("train", "--seed", "1", "--checkpoint", path)
    assert code == 0 and "Model accuracy on 27 triples: 27/27" in out
    code, out, _ = cli("eval", "--checkpoint", path)
    lines = out.splitlines()
    assert code == 0 and lines[-1] == "Model accuracy on 27 triples: 27/27"
    assert sum(line.endswith("✓") for line in lines) == 27
    code, out, _ = cli("trace", "ccb", "--checkpoint", path)
    assert code == 0 and out.splitlines()[-1].endswith("-> outputs [b, c, c]")


def test_sort_reads_stdin_with_dash(workdir, cli, monkeypatch):
    import io

    cli("train")
    monkeypatch.setattr(sys, "stdin", io.StringIO("abc\nCBA\n"))
    code, out, _ = cli("sort", "-")
    assert code == 0 and out.splitlines() == ["abc -> abc", "cba -> abc"]


BAD_INPUTS = ["ab", "abcd", "abd", "a1c", "a c", "", "ça", "x" * 5000]


@pytest.mark.parametrize("text", BAD_INPUTS)
def test_bad_sort_input_is_one_line_and_exit_2(workdir, cli, text):
    cli("train")
    code, out, err = cli("sort", "abc", text)
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and "3 letters from {a, b, c}" in err


@pytest.mark.parametrize("argv, needle", [
    (["train", "--variant", "e7"], "known: e6, e6-nopos, e4-nopos, e8-mlp2"),
    (["train", "--steps", "0"], "a step limit from 1 to 1,000,000"),
    (["train", "--steps", "-5"], "a step limit from 1 to 1,000,000"),
    # numbers that would ask for terabytes are refused by the parser, not by an allocation
    (["sweep", "--seeds", "1000000000"], "a number of seeds from 1 to 10,000"),
    (["train", "--batch-size", "1000000000000"], "a batch size from 1 to 100,000"),
    (["sort", "caa", "--embed", "100000"], "an embedding size from 1 to 256"),
    (["sweep", "--first-seed", str(2**63 - 1), "--seeds", "2"], "past the last seed"),
    (["params", "--checkpoint", "x.safetensors"], "unrecognized arguments"),  # it would be unread
    (["sort", "-", "-"], "only once"),
    (["train", "--seed", "x"], "integer seed"),
    (["train", "--seed", "1.5"], "integer seed"),
    (["train", "--lr", "nan"], "positive number"),
    (["params", "--embed", "5"], "divisible"),
    (["eval", "--checkpoint", "nowhere.safetensors"], "no checkpoint at"),
    # Path("out/") is "out": a trailing slash must not turn a meant folder into a file
    (["train", "--steps", "1", "--checkpoint", "out/"], "expected a file name, got 'out/'"),
    (["sweep", "--seeds", "1", "--steps", "1", "--json", "out/"], "expected a file name"),
    (["sweep", "--seeds", "1", "--steps", "1", "--csv", ""], "expected a file name, got ''"),
    (["frobnicate"], "unknown command"),
    (["sort"], "INPUT"),
])
def test_bad_arguments_are_one_line_and_exit_2(workdir, cli, argv, needle):
    code, _, err = cli(*argv)
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and needle in err
    assert not (workdir / "out").exists()


@pytest.mark.parametrize("content", [b"", b"garbage" * 100, b"{}"])
def test_broken_checkpoint_is_refused_and_left_alone(workdir, cli, content):
    path = workdir / "runs" / "e6" / "model.safetensors"
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    for argv in (["sort", "abc"], ["eval"], ["trace", "abc"]):
        code, out, err = cli(*argv)
        assert code == 2 and out == "" and len(err.splitlines()) == 1
    assert path.read_bytes() == content  # nothing was overwritten


def test_truncated_checkpoint_is_refused(workdir, cli):
    cli("train")
    path = workdir / "runs" / "e6" / "model.safetensors"
    path.write_bytes(path.read_bytes()[:300])
    code, _, err = cli("eval")
    assert code == 2 and "not a readable safetensors file" in err


def test_unwritable_checkpoint_path_is_one_line(workdir, cli):
    (workdir / "blocker").write_text("a file, not a folder")
    code, out, err = cli("train", "--checkpoint", str(workdir / "blocker" / "m.safetensors"))
    assert code == 2 and len(err.splitlines()) == 1 and "cannot write" in err
    assert "Training" not in out  # refused before any training


def test_eval_trains_first_with_the_seed_asked_for(workdir, cli):
    from zeptogpt import load

    code, out, err = cli("eval", "--seed", "3")
    assert code == 0 and out.splitlines()[-1] == "Model accuracy on 27 triples: 27/27"
    assert "training one first" in err
    assert load(workdir / "runs" / "e6" / "model.safetensors").facts["seed"] == 3


def test_a_diverged_run_saves_nothing_and_keeps_the_old_checkpoint(workdir, cli):
    cli("train")
    path = workdir / "runs" / "e6" / "model.safetensors"
    before = {p.name: p.read_bytes() for p in path.parent.iterdir()}
    code, _, err = cli("train", "--lr", "1e30", "--steps", "20")
    assert code == 2 and len(err.splitlines()) == 1 and "diverged" in err
    assert {p.name: p.read_bytes() for p in path.parent.iterdir()} == before


def test_two_blocks_train_save_and_sort_from_the_command_line(workdir, cli):
    code, out, _ = cli("train", "--layers", "2")
    assert code == 0 and "Model accuracy on 27 triples: 27/27" in out
    assert (workdir / "runs" / "e6-2layers" / "model.safetensors").is_file()
    code, out, _ = cli("trace", "cab", "--layers", "2")
    assert code == 0 and "layer1 head1: [" in out and out.endswith("outputs [a, b, c]\n")
    code, _, err = cli("eval", "--layers", "3", "--checkpoint",
                       str(workdir / "runs" / "e6-2layers" / "model.safetensors"))
    assert code == 2 and "holds e6-2layers, not the e6-3layers asked for" in err


def test_a_checkpoint_of_another_architecture_than_asked_is_refused(workdir, cli):
    cli("train")
    path = str(workdir / "runs" / "e6" / "model.safetensors")
    assert cli("eval", "--checkpoint", path, "--variant", "e6")[0] == 0
    code, _, err = cli("eval", "--checkpoint", path, "--variant", "e8-mlp2")
    assert code == 2 and "holds e6, not the e8-mlp2 asked for by --variant e8-mlp2" in err
    code, _, err = cli("eval", "--checkpoint", str(workdir / "runs"))
    assert code == 2 and "is a folder, not a checkpoint file" in err


def test_serve_without_a_checkpoint_names_the_command_that_makes_it(workdir, cli):
    code, _, err = cli("serve", "--embed", "8", "--no-pos")
    assert code == 2 and "run `zeptogpt train --embed 8 --no-pos` first" in err


def test_serve_refuses_what_eval_refuses(workdir, cli):
    cli("train")
    path = str(workdir / "runs" / "e6" / "model.safetensors")
    code, _, err = cli("serve", "--checkpoint", path, "--variant", "e8-mlp2")
    assert code == 2 and "holds e6, not the e8-mlp2" in err
    code, _, err = cli("serve", "--checkpoint", str(workdir / "runs"))
    assert code == 2 and "is a folder, not a checkpoint file" in err


def test_a_log_path_that_cannot_be_written_is_refused_before_training(workdir, cli):
    (workdir / "m.log.jsonl").mkdir()  # where the log of m.safetensors goes
    code, out, err = cli("train", "--checkpoint", str(workdir / "m.safetensors"))
    assert code == 2 and "m.log.jsonl is a folder" in err and "Training" not in out


def test_sweep_json_and_csv_must_be_two_files(workdir, cli):
    code, out, err = cli("sweep", "--seeds", "2", "--json", "same.txt", "--csv", "./same.txt")
    assert code == 2 and "name the same file" in err and out == ""
    assert not (workdir / "same.txt").exists()


def test_a_bad_stdin_line_is_named(workdir, cli, monkeypatch):
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO("abc\n\nCBA\n"))
    code, _, err = cli("sort", "-")
    assert code == 2 and "stdin line 2: empty input" in err


def test_outputs_are_checked_before_training(workdir, cli):
    (workdir / "runs").write_text("a file where the runs folder goes")
    code, out, err = cli("sweep", "--seeds", "2", "--threads", "1")
    assert code == 2 and "runs is not a folder" in err and "e6 (318 params)" not in out
    (workdir / "runs").unlink()
    (workdir / "blocker").write_text("")
    code, out, err = cli("plot", "weights", "--out", str(workdir / "blocker"))
    assert code == 2 and "is not a folder" in err and not (workdir / "runs").exists()


def test_interactive_prompt_sorts_and_asks_again_on_bad_input(workdir, capsys, monkeypatch, cli):
    from zeptogpt import commands
    from zeptogpt.cli import build_parser
    from zeptogpt.inputs import prompt

    answers = iter(["caa", "abz", "ccb", ""])
    monkeypatch.setattr("builtins.input", lambda prompt: next(answers))
    cli("train")
    prompt(commands._load_or_train(build_parser().parse_args(["eval"])))
    out = capsys.readouterr().out
    assert "outputs [a, a, c]" in out and "outputs [b, c, c]" in out
    assert "error: 'abz' has characters outside the alphabet ('z')" in out


# --- as a real process -----------------------------------------------------------------------

def test_main_job_without_a_terminal(tmp_path):
    p = process(cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "Trainable parameters: 318" in p.stdout
    assert "Model accuracy on 27 triples: 27/27" in p.stdout
    for x, y in (("c, a, a", "a, a, c"), ("b, a, c", "a, b, c"), ("c, c, b", "b, c, c")):
        assert f"  full [{x}, <sep>, {y}] -> outputs [{y}]" in p.stdout
    assert (tmp_path / "runs" / "e6" / "model.safetensors").is_file()
    assert "type letters" not in p.stdout


def test_real_process_errors_have_no_traceback(tmp_path):
    assert process("train", "--seed", "x", cwd=tmp_path).returncode == 2
    big = process("sort", "-", stdin="a" * 10**6 + "\n", cwd=tmp_path)
    assert big.returncode == 2, big.stderr
    last = big.stderr.strip().splitlines()[-1]
    assert "Traceback" not in big.stderr and len(last) < 200 and "3 letters" in last
    assert not (tmp_path / "runs").exists()  # the input was refused before any training
    bad = tmp_path / "runs" / "e6" / "model.safetensors"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"\x00" * 64)
    p = process("sort", "abc", cwd=tmp_path)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "Traceback" not in p.stderr


def test_help_works_for_every_command():
    for command in ("run", "train", "eval", "sort", "trace", "params"):
        p = process(command, "--help")
        assert p.returncode == 0 and "usage: zeptogpt " + command in p.stdout


def test_a_reader_that_leaves_early_is_not_a_traceback(tmp_path):
    """`zeptogpt sweep ... | head -1` closes the pipe while the command still prints."""
    p = subprocess.Popen([sys.executable, "-m", "zeptogpt", "sweep", "--seeds", "2", "--threads",
                          "1", "--json", "s.json", "--csv", "s.csv"], cwd=tmp_path,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    p.stdout.readline()
    p.stdout.close()  # the reader leaves after one line; three more are still to come
    err = p.stderr.read()
    assert p.wait(timeout=120) in (0, 141)
    assert "Traceback" not in err


# --- hardening: each test fails without the fix it names ----------------------------------------

def test_trace_takes_several_inputs_and_stdin_like_sort(workdir, cli, monkeypatch):
    import io

    cli("train")
    code, out, _ = cli("trace", "caa", "bca")
    assert code == 0
    assert [line for line in out.splitlines() if line.startswith("start")] == [
        "start [c, a, a, <sep>]  (heads=2, head_dim=3)",
        "start [b, c, a, <sep>]  (heads=2, head_dim=3)"]
    monkeypatch.setattr(sys, "stdin", io.StringIO("ccb\n"))
    code, out, _ = cli("trace", "-")
    assert code == 0 and out.splitlines()[-1].endswith("-> outputs [b, c, c]")


def test_unrecognized_arguments_name_the_subcommand(workdir, cli):
    code, _, err = cli("trace", "caa", "--bogus")
    assert code == 2 and err == "zeptogpt trace: error: unrecognized arguments: --bogus\n"
    code, _, err = cli("params", "extra")
    assert code == 2 and err.startswith("zeptogpt params: error: unrecognized arguments: extra")


def test_params_does_not_import_torch():
    code = ("import sys; from zeptogpt.cli import main; assert main(['params']) == 0; "
            "print('torch' in sys.modules)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[-1] == "False"  # imported by every other command
    assert "Trainable parameters: 318" in p.stdout


def test_a_full_stdout_is_one_line_and_exit_1(tmp_path):
    with open("/dev/full", "w") as full:
        p = subprocess.run([sys.executable, "-m", "zeptogpt", "params"], stdout=full,
                           stderr=subprocess.PIPE, text=True, timeout=60, cwd=tmp_path)
    assert p.returncode == 1
    assert p.stderr == ("zeptogpt params: error: cannot write the output "
                        "(No space left on device)\n")


def test_an_ascii_stdout_gets_plain_marks(workdir, cli):
    cli("train")
    env = {**__import__("os").environ, "PYTHONIOENCODING": "ascii"}
    for argv in (["eval"], ["params"], ["--help"]):
        p = subprocess.run([sys.executable, "-m", "zeptogpt", *argv], capture_output=True,
                           text=True, timeout=60, cwd=workdir, env=env)
        assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
        assert p.stdout.isascii()
    assert "ok/x each" in p.stdout  # the help's "✓/✗ each"
    eval_out = subprocess.run([sys.executable, "-m", "zeptogpt", "eval"], capture_output=True,
                              text=True, timeout=60, cwd=workdir, env=env).stdout
    assert eval_out.splitlines()[0] == "  aaa -> aaa   target aaa  ok"


def test_sort_streams_stdin_a_batch_at_a_time(workdir, cli):
    """The answers to the first batch arrive while stdin is still open: nothing waits for the
    end of the input, so memory does not grow with it."""
    import threading

    from zeptogpt.inputs import STDIN_BATCH

    cli("train")
    p = subprocess.Popen([sys.executable, "-m", "zeptogpt", "sort", "-"], cwd=workdir,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    watchdog = threading.Timer(60, p.kill)  # a reader of the whole stdin would wait forever
    watchdog.start()
    try:
        p.stdin.write("cab\n" * STDIN_BATCH)
        p.stdin.flush()
        first = [p.stdout.readline() for _ in range(STDIN_BATCH)]  # stdin still open
        assert first == ["cab -> abc\n"] * STDIN_BATCH
        p.stdin.write("bba\n")
        p.stdin.close()
        assert p.stdout.read() == "bba -> abb\n" and p.wait(timeout=60) == 0
    finally:
        watchdog.cancel()
        p.kill()


def test_a_line_without_end_on_stdin_is_refused_at_the_limit(workdir, cli):
    from zeptogpt.inputs import MAX_LINE

    cli("train")
    with open("/dev/zero", "rb") as zero:  # endless, no newline: read all, it never ends
        p = subprocess.run([sys.executable, "-m", "zeptogpt", "sort", "-"], stdin=zero,
                           capture_output=True, text=True, timeout=120, cwd=workdir)
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr == (f"zeptogpt sort: error: stdin line 1 is longer than {MAX_LINE:,} "
                        "characters: expected 3 letters from {a, b, c}\n")
    p = process("sort", "-", stdin="abc\n" * 5000 + "abz\n", cwd=workdir)
    assert p.returncode == 2 and p.stderr.startswith("zeptogpt sort: error: stdin line 5001: ")
    assert p.stdout.count("\n") == 4096  # the batches before the bad line were answered


@pytest.mark.parametrize("delay", [0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
def test_ctrl_c_during_start_up_is_not_a_traceback(workdir, cli, delay):
    """SIGINT while torch is imported (it takes a second or more, so the command cannot have
    finished). Not sooner: in its first tens of milliseconds (more on a loaded machine) Python
    is still starting, and a Ctrl-C then is Python's own traceback, before a line of ours runs.
    Torch interrupted half-way has aborted the process, lost the Ctrl-C, or refused a second
    import, so the CLI holds it until the import is done."""
    import signal
    import time

    cli("train")
    p = subprocess.Popen([sys.executable, "-m", "zeptogpt", "eval"], cwd=workdir,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    p.send_signal(signal.SIGINT)
    err = p.communicate(timeout=60)[1]
    assert "Traceback" not in err
    # -2: interrupted inside code that torch runs through PyRun_String, Python ends by SIGINT
    # itself once we return, which a shell reports as 130 too
    assert p.returncode in (130, -2) and err == "\ninterrupted\n"


def test_the_command_line_trains_the_same_bits_on_any_machine(workdir, cli):
    """Torch's thread count changes a seed's last bits (measured: 1, 2 and 4 threads give three
    different W_E after 40 steps), so the CLI always trains one model on one thread."""
    import torch

    from zeptogpt import load

    before = torch.get_num_threads()
    try:
        for threads in (1, 4):
            torch.set_num_threads(threads)  # what the machine would give a plain torch program
            assert cli("train", "--checkpoint", f"t{threads}.safetensors")[0] == 0
    finally:
        torch.set_num_threads(before)
    one, four = (load(f"t{n}.safetensors").model.state_dict() for n in (1, 4))
    assert all(torch.equal(one[k], four[k]) for k in one)


def test_a_closed_stdout_drops_the_output_as_python_does(workdir, cli):
    import os

    cli("train")
    for argv in (["params"], ["eval"], ["sort", "caa"]):
        p = subprocess.run([sys.executable, "-m", "zeptogpt", *argv], cwd=workdir,
                           stderr=subprocess.PIPE, text=True, timeout=60,
                           preexec_fn=lambda: os.close(1))  # `zeptogpt ... >&-`
        assert (p.returncode, p.stderr) == (0, ""), p.stderr


@pytest.mark.parametrize("kind", ["fifo", "/dev/zero"])
def test_plot_curves_reads_only_a_regular_sweep_file(workdir, kind):
    import os

    path = workdir / "results.json"
    if kind == "fifo":
        os.mkfifo(path)  # nobody writes: a plain read would wait forever
    else:
        path = kind  # never ends: a plain read fills memory
    p = process("plot", "curves", "--sweep", str(path), cwd=workdir)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.endswith(f"{path} is not a regular file\n") and p.stderr.count("\n") == 1


def test_a_name_too_long_is_a_usage_error(workdir):
    p = process("eval", "--checkpoint", "m" * 300 + ".safetensors", cwd=workdir)
    assert p.returncode == 2 and "Traceback" not in p.stderr and p.stderr.count("\n") == 1
    assert p.stderr.endswith("which has a name longer than 255 bytes\n")


def test_what_the_system_refuses_is_one_line_and_exit_1(workdir):
    """Each name fits, the whole path does not (4,096 bytes): the system says so, not us."""
    p = process("eval", "--checkpoint", "/".join(["m" * 250] * 20), cwd=workdir)
    assert p.returncode == 1 and "Traceback" not in p.stderr and p.stderr.count("\n") == 1
    assert p.stderr.endswith("...': File name too long\n") and len(p.stderr) < 100


def test_stdin_that_cannot_be_read_is_one_line(workdir, cli):
    cli("train")
    with open(workdir / "out.txt", "wb") as write_only:
        p = subprocess.run([sys.executable, "-m", "zeptogpt", "sort", "-"], stdin=write_only,
                           capture_output=True, text=True, timeout=60, cwd=workdir)
    assert p.returncode == 2
    assert p.stderr == "zeptogpt sort: error: cannot read stdin line 1 (Bad file descriptor)\n"


@pytest.mark.parametrize("flag", ["--steps", "--lr", "--variant", "--checkpoint", "--objective"])
def test_an_error_never_echoes_a_huge_value(workdir, cli, flag):
    value = "9" * 100_000 + ("/" if flag == "--checkpoint" else "")
    code, out, err = cli("train", flag, value)
    assert code == 2 and out == "" and err.count("\n") == 1 and len(err) < 300


# --- tasks ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("flags, needle", [
    (["--alphabet", "aab"], "needs at least 2 symbols, each once"),
    (["--alphabet", "a b"], "without spaces"),
    (["--alphabet", "a"], "needs at least 2 symbols"),
    (["--alphabet", "ab\x01"], "printable"),
    (["--length", "0"], "expected a length from 1 to 32"),
    (["--length", "33"], "expected a length from 1 to 32"),
    (["--task", "abc99"], "unknown task 'abc99' (known: abc3, abc6, abc1-6, digits4"),
    (["--min-length", "4"], "min-length must be from 1 to the length (3), got 4"),
    (["--task", "abc6", "--min-length", "7"], "min-length must be from 1 to the length (6)"),
    (["--min-length", "0"], "expected a length from 1 to 32"),
])
def test_bad_task_options_are_one_line_and_nothing_is_written(workdir, cli, flags, needle):
    code, out, err = cli("train", *flags)
    assert code == 2 and out == "" and err.count("\n") == 1 and needle in err
    assert not (workdir / "runs").exists()


def test_a_checkpoint_brings_its_task_and_a_conflicting_flag_is_refused(workdir, cli):
    code, out, _ = cli("train", "--task", "abc3", "--reverse", "--checkpoint", "r.safetensors")
    assert code == 0 and "Model accuracy on 27 triples: 27/27" in out
    code, out, _ = cli("sort", "abc", "cab", "--checkpoint", "r.safetensors")  # no task flags
    assert code == 0 and out.splitlines() == ["abc -> cba", "cab -> cba"]
    code, _, err = cli("eval", "--checkpoint", "r.safetensors", "--length", "4")
    assert code == 2 and err == ("zeptogpt eval: error: r.safetensors was trained for "
                                 "abc3-reverse (sort 3 letters from {a, b, c}, largest first), "
                                 "not the abcx4 asked for by --length 4\n")


def test_a_task_of_several_lengths_through_the_cli(workdir, cli):
    flags = ["--alphabet", "ab", "--length", "3", "--min-length", "2"]
    code, out, _ = cli("train", *flags)
    assert code == 0 and "Model accuracy on 12 inputs: 12/12" in out
    path = workdir / "runs" / "abx2-3-e6" / "model.safetensors"
    code, out, _ = cli("sort", "ba", "bab", "--checkpoint", str(path))
    assert code == 0 and out == "ba -> ab\nbab -> abb\n"
    for bad, count in (("a", "1 letter"), ("abab", "4 letters")):
        code, out, err = cli("sort", bad, "--checkpoint", str(path))
        assert code == 2 and out == "" and err == (
            f"zeptogpt sort: error: '{bad}' has {count}: expected 2 to 3 letters from {{a, b}} "
            "(case-insensitive)\n")
    code, _, err = cli("sort", "ab", "--checkpoint", str(path), "--min-length", "3")
    assert code == 2 and "trained for abx2-3" in err and "--min-length 3" in err
    code, out, _ = cli("trace", "ba", "--checkpoint", str(path))
    assert code == 0 and "start [b, a, <sep>]" in out and "step3" not in out


def test_each_task_has_its_own_default_checkpoint(workdir, cli):
    code, out, _ = cli("sort", "0312", "--alphabet", "0123", "--length", "4")
    assert code == 0 and out == "0312 -> 0123\n"
    assert (workdir / "runs" / "0123x4-e6" / "model.safetensors").is_file()
    assert not (workdir / "runs" / "e6").exists()
    code, _, err = cli("sort", "0312")  # the seed's task, which has no checkpoint: it trains one
    assert code == 2 and "'0312' has characters outside the alphabet" in err


def test_the_main_job_traces_inputs_of_its_task(workdir, cli):
    code, out, _ = cli("run", "--task", "abc6")
    traces = [line for line in out.splitlines() if line.startswith("  full [")]
    assert code == 0 and len(traces) == 3 and "Model accuracy on 729 inputs: 729/729" in out
    for line in traces:  # "  full [c, a, ..., <sep>, a, ...] -> outputs [a, ...]"
        given = line.split("[")[1].split(", <sep>")[0].split(", ")
        assert line.endswith(f"-> outputs [{', '.join(sorted(given))}]") and len(given) == 6
