"""Command line: parse, call the library, print. ``zeptogpt`` alone runs the main job.

Every user error ends in one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import NoReturn

USAGE_ERROR = 2
COMMANDS = ("run", "train", "eval", "sort", "trace", "params", "sweep", "plot", "serve")
PLOTS = ("attention", "lens", "weights", "curves")
DEMO_INPUTS = ("caa", "bac", "ccb")  # the seed's traces
FALLBACK_SEED = "seed used if a checkpoint has to be trained first"


class UserError(Exception):
    """Anything the user can fix; printed as one line, exit 2."""


class Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (``zeptogpt sort: error: ...``), not two."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message}\n")


def _integer(text: str, low: int, high: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def _up_to(high: int, what: str):
    """An argparse type: an integer from 1 to ``high``. The limits keep a typo from asking for
    terabytes (``--seeds 1000000000``); they are far beyond anything this task needs."""
    def parse(text: str) -> int:
        return _integer(text, 1, high, f"{what} from 1 to {high:,}")
    return parse


def _seed(text: str) -> int:
    return _integer(text, 0, 2**63 - 1, "an integer seed from 0 to 2**63-1")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _file(text: str) -> Path:
    """An argparse type: a path naming a file. ``Path("out/")`` is ``out``, so a name that ends
    in a slash would quietly become a file where a folder was meant."""
    if not text or text.endswith(("/", os.sep)):
        raise argparse.ArgumentTypeError(f"expected a file name, got {text!r}")
    return Path(text)


def _port(text: str) -> int:
    return _integer(text, 0, 65535, "a port from 0 to 65535")


def _variant(text: str) -> str:
    from zeptogpt.model import VARIANTS

    if text not in VARIANTS:
        known = ", ".join(VARIANTS)
        raise argparse.ArgumentTypeError(f"unknown variant {text!r} (known: {known})")
    return text


def _add_model_options(p: argparse.ArgumentParser, checkpoint: bool = True) -> None:
    p.add_argument("--variant", type=_variant, metavar="NAME",
                   help="named architecture: e6 (318, default), e6-nopos (276), "
                        "e4-nopos (136), e8-mlp2 (648)")
    p.add_argument("--embed", type=_up_to(256, "an embedding size"), metavar="E",
                   help="embedding size E (overrides the variant)")
    p.add_argument("--heads", type=_up_to(256, "a number of heads"), metavar="H",
                   help="attention heads H (E must divide by H)")
    p.add_argument("--mlp", type=_up_to(16, "an MLP multiple"), metavar="M",
                   help="MLP hidden width as a multiple of E")
    p.add_argument("--pos", action=argparse.BooleanOptionalAction, default=None,
                   help="learned positional embedding on/off (overrides the variant)")
    p.add_argument("--layers", type=_up_to(64, "a number of blocks"), metavar="L",
                   help="transformer blocks (default 1, the seed's)")
    if checkpoint:
        p.add_argument("--checkpoint", type=_file, metavar="PATH",
                       help="checkpoint file (default: runs/<variant>/model.safetensors)")


def _add_seed_option(p: argparse.ArgumentParser, why: str) -> None:
    p.add_argument("--seed", type=_seed, default=0, metavar="N", help=f"{why} (default 0)")


def _add_train_options(p: argparse.ArgumentParser) -> None:
    _add_seed_option(p, "seed of the initial weights")
    _add_recipe_options(p)


def _add_recipe_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--steps", type=_up_to(1_000_000, "a step limit"), default=2000, metavar="N",
                   help="step limit: stop there if not solved before (default 2000)")
    p.add_argument("--lr", type=_positive_float, help="Adam learning rate (default 0.03)")
    p.add_argument("--objective", choices=("answer", "full"), default="answer",
                   help="loss on the answer only (default) or on every next token (the seed's)")
    p.add_argument("--batch-size", type=_up_to(100_000, "a batch size"), metavar="N",
                   help="sample this many sequences per step like the seed (default: all 27)")


def build_parser() -> argparse.ArgumentParser:
    """The ``zeptogpt`` argument parser with its subcommands."""
    parser = Parser(prog="zeptogpt", description="The smallest GPT that learns Python's sorted(). "
                    "With no command: train, evaluate, trace, save, then sort what you type.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="the main job (what `zeptogpt` alone does)")
    _add_model_options(run)
    _add_train_options(run)

    train = sub.add_parser("train", help="train a model and save its checkpoint")
    _add_model_options(train)
    _add_train_options(train)

    ev = sub.add_parser("eval", help="sort all 27 inputs with the saved model, ✓/✗ each")
    _add_model_options(ev)
    _add_seed_option(ev, FALLBACK_SEED)

    sort = sub.add_parser("sort", help="sort inputs with the saved model: caa -> aac")
    sort.add_argument("inputs", nargs="+", metavar="INPUT",
                      help="letters to sort, e.g. caa; '-' reads one input per line from stdin")
    sort.add_argument("--trace", action="store_true", help="print the trace of each input")
    _add_model_options(sort)
    _add_seed_option(sort, FALLBACK_SEED)

    trace = sub.add_parser("trace", help="the step-by-step trace of one input")
    trace.add_argument("input", metavar="INPUT", help="letters to sort, e.g. caa")
    _add_model_options(trace)
    _add_seed_option(trace, FALLBACK_SEED)

    params = sub.add_parser("params", help="the parameter breakdown of an architecture")
    _add_model_options(params, checkpoint=False)

    sweep = sub.add_parser("sweep", help="train many seeds at once and measure reliability")
    which = sweep.add_mutually_exclusive_group()
    which.add_argument("--variant", type=_variant, default="e6", metavar="NAME",
                       help="the variant to sweep (default e6)")
    which.add_argument("--all-variants", action="store_true",
                       help="sweep the four named variants and print the seed's variants table")
    sweep.add_argument("--layers", type=_up_to(64, "a number of blocks"), default=1, metavar="L",
                       help="transformer blocks of every variant swept (default 1)")
    sweep.add_argument("--seeds", type=_up_to(10_000, "a number of seeds"), default=256,
                       metavar="N",
                       help="seeds per variant (default 256)")
    sweep.add_argument("--first-seed", type=_seed, default=0, metavar="N",
                       help="seeds are N, N+1, ... (default 0)")
    _add_recipe_options(sweep)
    sweep.add_argument("--json", type=_file, metavar="FILE",
                       help="save the results as JSON (default runs/sweep/<name>.json, the "
                       "name saying what was swept and any change to the recipe)")
    sweep.add_argument("--csv", type=_file, metavar="FILE",
                       help="save the summaries as CSV (default runs/sweep/<name>.csv)")
    sweep.add_argument("--threads", type=_up_to(os.cpu_count() or 1, "a number of cores"),
                       metavar="N",
                       help="cores to use: the seeds are dealt into up to N shards (32 seeds "
                       "or more each), each trained on one thread in a process of its own "
                       "(default: all cores)")

    plot = sub.add_parser("plot", help="draw PNGs: attention INPUT, lens INPUT, weights, curves")
    plot.add_argument("what", choices=PLOTS, metavar="WHAT",
                      help="attention INPUT | lens INPUT | weights | curves")
    plot.add_argument("input", nargs="?", metavar="INPUT",
                      help="letters to sort, for attention and lens (e.g. caa)")
    _add_model_options(plot)
    _add_seed_option(plot, FALLBACK_SEED)
    plot.add_argument("--out", type=Path,
                      help="folder for the PNGs (default: the checkpoint's folder)")
    plot.add_argument("--sweep", type=Path,
                      help="curves: a file saved by `zeptogpt sweep --json`, drawn as the "
                           "share of seeds solved vs steps (one picture per variant)")

    serve = sub.add_parser("serve", help="a local web page showing every number of a trace")
    _add_model_options(serve)
    serve.add_argument("--port", type=_port, default=8000, help="port (default 8000)")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to bind (default 127.0.0.1: this machine only)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``zeptogpt`` command. Usage: ``main(["sort", "caa"])``"""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if argv and not argv[0].startswith("-") and argv[0] not in COMMANDS:
        parser.error(f"unknown command {argv[0][:40]!r} (commands: {', '.join(COMMANDS)})")
    if not argv or argv[0] not in COMMANDS and argv[0] not in ("-h", "--help"):
        argv.insert(0, "run")  # `zeptogpt [options]` is the main job
    args = parser.parse_args(argv)
    import torch

    # One model's tensors are far too small to split across threads; a second thread only
    # adds waiting (a single-seed run was 4x slower with two threads on a busy machine).
    torch.set_num_threads(1)
    try:
        return _COMMANDS[args.command](args)
    except UserError as e:
        print(f"zeptogpt {args.command}: error: {e}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader left (`zeptogpt sweep | head -1`): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 141


# --- the commands -------------------------------------------------------------------------------

def cmd_params(args: argparse.Namespace) -> int:
    """`zeptogpt params`: the parameter table of an architecture."""
    _, config = _model_config(args)
    print(config.format_params())
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """`zeptogpt train`: train one seed and save its checkpoint and log."""
    task, config = _model_config(args)
    from zeptogpt.model import ZeptoGPT

    print(ZeptoGPT(config))
    path = _checkpoint_path(args, config)
    checkpoint, log = _train(args, task, config, _recipe(args))
    print(_evaluation(checkpoint).splitlines()[-1])
    _save(path, checkpoint, log)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """`zeptogpt` / `zeptogpt run`: the main job: train, evaluate, trace, save, then sort."""
    from zeptogpt.evaluation import format_trace
    from zeptogpt.model import ZeptoGPT

    task, config = _model_config(args)
    print(ZeptoGPT(config))
    print(f"Task: sort {task.describe()}; sequence [{', '.join(_layout(task))}]")
    print(config.format_params())
    path = _checkpoint_path(args, config)
    checkpoint, log = _train(args, task, config, _recipe(args))
    print(f"Evaluation on all {task.n_inputs} inputs (greedy, <sep> forbidden after <sep>):")
    print(_evaluation(checkpoint))
    for x in DEMO_INPUTS:
        print(format_trace(checkpoint.model, task, x))
    _save(path, checkpoint, log)
    if sys.stdin is not None and sys.stdin.isatty():
        _interactive(checkpoint)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """`zeptogpt eval`: all inputs through the saved model, each marked right or wrong."""
    print(_evaluation(_load_or_train(args)))
    return 0


def cmd_sort(args: argparse.Namespace) -> int:
    """`zeptogpt sort`: sort the given inputs with the saved model."""
    from zeptogpt.evaluation import decode, format_trace

    task, _ = _model_config(args)
    words = [_parse(task, x, where) for where, x in _read_inputs(args.inputs)]  # before any work
    checkpoint = _load_or_train(args)
    result = decode(checkpoint.model, checkpoint.task, words)
    for word, out in zip(words, result.outputs):
        if args.trace:
            print(format_trace(checkpoint.model, checkpoint.task, word))
        print(f"{word} -> {out}")
    return 0


def cmd_trace(args: argparse.Namespace) -> int:
    """`zeptogpt trace`: the step-by-step trace of one input."""
    from zeptogpt.evaluation import format_trace

    task, _ = _model_config(args)
    word = _parse(task, args.input)
    checkpoint = _load_or_train(args)
    print(format_trace(checkpoint.model, checkpoint.task, word))
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    """`zeptogpt sweep`: many seeds at once; reliability figures printed and saved."""
    from zeptogpt.checkpoint import RUNS_DIR
    from zeptogpt.files import write_atomic
    from zeptogpt.model import VARIANTS, variant_config
    from zeptogpt.shards import shard_count
    from zeptogpt.sweep import (
        format_summary,
        result_name,
        run_sweep,
        to_csv,
        to_json,
        variants_table,
    )
    from zeptogpt.task import SortTask

    names = list(VARIANTS) if args.all_variants else [args.variant]
    recipe = _recipe(args)
    swept = "variants" if args.all_variants else args.variant
    swept += f"-{args.layers}layers" if args.layers > 1 else ""
    stem = result_name(swept, args.seeds, args.first_seed, recipe)
    json_path = args.json or RUNS_DIR / "sweep" / f"{stem}.json"
    csv_path = args.csv or RUNS_DIR / "sweep" / f"{stem}.csv"
    if args.first_seed + args.seeds - 1 > 2**63 - 1:
        raise UserError(f"seeds {args.first_seed}.. run past the last seed, 2**63-1")
    if json_path.resolve() == csv_path.resolve():
        raise UserError(f"--json and --csv name the same file, {json_path}")
    for path in (json_path, csv_path):  # refuse now, not after minutes of training
        _check_writable(path)
    task = SortTask()
    shards = shard_count(args.seeds, args.threads or os.cpu_count() or 1)
    sweeps = []
    for name in names:
        with _SweepProgress(name, args.seeds) as progress:
            config = variant_config(name, task.vocab_size, task.seq_len, n_layer=args.layers)
            sweeps.append(run_sweep(task, config, args.seeds, recipe, args.first_seed,
                                    on_step=progress, shards=shards))
        print(format_summary(sweeps[-1].summary), flush=True)
    if args.all_variants:
        print(variants_table([s.summary for s in sweeps]))
    try:  # both files or neither
        write_atomic({json_path: to_json(sweeps).encode(), csv_path: to_csv(sweeps).encode()})
    except OSError as e:
        raise UserError(f"cannot write {json_path} and {csv_path}: {e.strerror or e}") from None
    print(f"Saved {json_path} and {csv_path}")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    """`zeptogpt plot`: PNGs of attention, the logit lens, the weights or training curves."""
    from zeptogpt import plots

    try:
        import matplotlib  # noqa: F401 (checked here so its absence is one line, not a traceback)
    except ImportError:
        raise UserError("plotting needs matplotlib: pip install matplotlib") from None
    task, config = _model_config(args)
    if args.what in ("attention", "lens"):
        if args.input is None:
            raise UserError(f"plot {args.what} needs an INPUT, e.g. zeptogpt plot {args.what} caa")
        word = _parse(task, args.input)
    elif args.input is not None:
        raise UserError(f"plot {args.what} takes no INPUT (got {args.input[:40]!r})")
    if args.sweep is not None and args.what != "curves":
        raise UserError("--sweep goes with `plot curves`")
    out = args.out
    if args.what == "curves" and args.sweep is not None:
        sweeps = _read_sweeps(args.sweep)
        figures = {"solved-share" + (f"-{s.summary.variant}" if len(sweeps) > 1 else ""):
                   plots.plot_solved_share(s.steps, s.summary.step_limit,
                                           title=s.summary.variant)
                   for s in sweeps}
        out = out if out is not None else args.sweep.parent
    else:
        path = _checkpoint_path(args, config)
        name = f"{args.what}-{word}" if args.what in ("attention", "lens") else args.what
        if out is not None:  # refuse before any training, not after
            _check_writable(Path(out) / f"{name}.png")
        checkpoint = _load_or_train(args)
        out = out if out is not None else path.parent
        if args.what == "attention":
            figure = plots.plot_attention(checkpoint.model, task, word)
        elif args.what == "lens":
            figure = plots.plot_lens(checkpoint.model, task, word)
        elif args.what == "weights":
            figure = plots.plot_weights(checkpoint.model, task)
        else:
            figure = plots.plot_curves(_read_log(path), task.n_inputs)
        figures = {name: figure}
    for name, fig in figures.items():
        try:
            print(plots.save_png(fig, Path(out) / f"{name}.png"))
        except OSError as e:
            raise UserError(f"cannot write {Path(out) / name}.png: {e.strerror or e}") from None
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """`zeptogpt serve`: the local web page for a saved model."""
    from zeptogpt.serve import serve

    task, config = _model_config(args)
    path = _checkpoint_path(args, config)
    if not path.exists():
        how = " ".join(["zeptogpt train", *_architecture_flags(args),
                        *([f"--checkpoint {path}"] * (args.checkpoint is not None))])
        raise UserError(f"no checkpoint at {path}: run `{how}` first")
    checkpoint = _load(args, path, task, config)
    try:
        serve(checkpoint, path, host=args.host, port=args.port)
    except OSError as e:
        raise UserError(f"cannot serve on {args.host}:{args.port}: {e.strerror or e}") from None
    return 0


_COMMANDS = dict(run=cmd_run, train=cmd_train, eval=cmd_eval, sort=cmd_sort, trace=cmd_trace,
                 params=cmd_params, sweep=cmd_sweep, plot=cmd_plot, serve=cmd_serve)


# --- pieces the commands share ------------------------------------------------------------------

def _model_config(args: argparse.Namespace):
    """The task and the architecture the flags ask for."""
    from zeptogpt.model import variant_config
    from zeptogpt.task import SortTask

    task = SortTask()
    flags = dict(n_embd=args.embed, n_head=args.heads, mlp_mult=args.mlp, pos_embed=args.pos,
                 n_layer=args.layers)
    overrides = {k: v for k, v in flags.items() if v is not None}
    try:
        return task, variant_config(args.variant or "e6", task.vocab_size, task.seq_len,
                                    **overrides)
    except ValueError as e:
        raise UserError(str(e)) from None


def _architecture_flags(args: argparse.Namespace) -> list[str]:
    """The architecture options given on the command line, as they were typed."""
    flags = [f"--variant {args.variant}"] if args.variant else []
    flags += [f"--{name} {value}" for name, value in
              (("embed", args.embed), ("heads", args.heads), ("mlp", args.mlp),
               ("layers", args.layers)) if value]
    return flags + ([] if args.pos is None else ["--pos" if args.pos else "--no-pos"])


def _checkpoint_path(args: argparse.Namespace, config) -> Path:
    from zeptogpt.checkpoint import default_path

    return args.checkpoint if args.checkpoint is not None else default_path(config)


def _recipe(args: argparse.Namespace):
    """The training recipe: the defaults, changed by whichever training flags were given."""
    from zeptogpt.training import Recipe

    flags = dict(max_steps=args.steps, objective=args.objective, lr=args.lr,
                 batch_size=args.batch_size)
    return Recipe(**{k: v for k, v in flags.items() if v is not None})


def _train(args: argparse.Namespace, task, config, recipe):
    """Train one seed with a live step/loss line: (checkpoint, per-step log), not saved yet."""
    from dataclasses import asdict

    from zeptogpt.checkpoint import Checkpoint
    from zeptogpt.runlog import log_path
    from zeptogpt.training import train

    path = _checkpoint_path(args, config)
    for output in (path, log_path(path)):  # refuse before training, not after
        _check_writable(output)
    data = (f"{recipe.batch_size} sampled sequences" if recipe.batch_size
            else f"all {task.n_inputs} sequences")
    print(f"Training seed {args.seed}: {data} per step, Adam lr {recipe.lr:g}, "
          f"loss on {'the answer only' if recipe.objective == 'answer' else 'every next token'}, "
          f"up to {recipe.max_steps} steps")
    progress = _Progress(task.n_inputs)
    result = train(task, config, recipe, seeds=[args.seed], on_step=progress)
    r = result.results[0]
    progress.finish(r)
    if not all(bool(w.isfinite().all()) for w in result.weights.values()):
        raise UserError(f"training diverged (loss {r.loss:g}) with lr {recipe.lr:g}; nothing "
                        "was saved: try a smaller --lr")
    facts = dict(seed=r.seed, steps=r.steps, solved=r.solved, correct=r.correct,
                 total=task.n_inputs, margin=round(r.margin, 6), loss=round(r.loss, 6),
                 seconds=round(r.seconds, 3), recipe=asdict(recipe))
    return Checkpoint(result.models[0], task, facts), r.log


def _save(path: Path, checkpoint, log) -> None:
    """The checkpoint and, beside it, its training log: both or neither."""
    from zeptogpt.checkpoint import save
    from zeptogpt.runlog import log_path

    try:
        save(path, checkpoint, log)
    except OSError as e:
        raise UserError(f"cannot write the checkpoint {path}: {e.strerror or e}") from None
    print(f"Saved {path} and its training log {log_path(path).name}")


def _check_writable(path: Path) -> None:
    from zeptogpt.files import check_writable

    try:
        check_writable(path)
    except OSError as e:
        raise UserError(f"cannot write {path}: {e.strerror or e}") from None


def _read_log(checkpoint_path: Path):
    from zeptogpt.runlog import LogError, log_path, read_log

    try:
        return read_log(log_path(checkpoint_path))
    except LogError as e:
        raise UserError(str(e)) from None


def _read_sweeps(path: Path):
    from zeptogpt.sweep import SweepFileError, read_sweeps

    try:
        return read_sweeps(path)
    except SweepFileError as e:
        raise UserError(str(e)) from None


def _load_or_train(args: argparse.Namespace):
    """The saved checkpoint; with no --checkpoint and none saved yet, train one first, saying so."""
    from contextlib import redirect_stdout

    from zeptogpt.training import Recipe

    task, config = _model_config(args)
    path = _checkpoint_path(args, config)
    if args.checkpoint is None and not path.exists():
        print(f"No checkpoint at {path} yet: training one first.", file=sys.stderr)
        with redirect_stdout(sys.stderr):  # stdout stays for the answers alone
            checkpoint, log = _train(args, task, config, Recipe())
            _save(path, checkpoint, log)
        return checkpoint
    return _load(args, path, task, config)


def _load(args: argparse.Namespace, path: Path, task, config):
    """The checkpoint at ``path``, refused unless it is for ``task`` and, when architecture
    flags were given, of the ``config`` they ask for."""
    from zeptogpt.checkpoint import CheckpointError, load
    from zeptogpt.model import variant_name

    if path.is_dir():
        raise UserError(f"{path} is a folder, not a checkpoint file")
    try:
        checkpoint = load(path)
    except CheckpointError as e:
        raise UserError(str(e)) from None
    if checkpoint.task != task:
        raise UserError(f"{path} was trained for another task ({checkpoint.task.describe()})")
    flags = " ".join(_architecture_flags(args))
    if flags and checkpoint.model.config != config:
        raise UserError(f"{path} holds {variant_name(checkpoint.model.config)}, not the "
                        f"{variant_name(config)} asked for by {flags}")
    return checkpoint


def _evaluation(checkpoint) -> str:
    from zeptogpt.evaluation import evaluate

    return str(evaluate(checkpoint.model, checkpoint.task))


def _parse(task, text: str, where: str = "") -> str:
    from zeptogpt.task import InputError

    try:
        return task.parse(text)
    except InputError as e:
        raise UserError(f"{where}{e}") from None


def _read_inputs(inputs: list[str]) -> list[tuple[str, str]]:
    """(where, text) for each input, with '-' replaced by the lines of stdin; ``where`` names
    the stdin line, so an error can say which one."""
    if inputs.count("-") > 1:
        raise UserError("'-' (read stdin) can be given only once")
    if "-" not in inputs:
        return [("", x) for x in inputs]
    try:
        lines = sys.stdin.read().splitlines() if sys.stdin is not None else []
    except UnicodeDecodeError:
        raise UserError("stdin is not valid UTF-8 text") from None
    out = []
    for x in inputs:
        out.extend([(f"stdin line {n}: ", line) for n, line in enumerate(lines, 1)]
                   if x == "-" else [("", x)])
    if not out:
        raise UserError("no inputs on stdin")
    return out


def _layout(task) -> list[str]:
    n = task.length
    return [f"x{i + 1}" for i in range(n)] + ["<sep>"] + [f"y{i + 1}" for i in range(n)]


def _interactive(checkpoint) -> None:
    """Sort what the user types until an empty line or EOF; bad input just asks again."""
    from zeptogpt.evaluation import format_trace
    from zeptogpt.task import InputError

    task = checkpoint.task
    while True:
        try:
            text = input(f"type letters to sort ({task.describe()}; empty line ends): ")
        except EOFError:
            print()
            return
        if not text.strip():
            return
        try:
            word = task.parse(text)
        except InputError as e:
            print(f"error: {e}")
            continue
        print(format_trace(checkpoint.model, task, word))


class _Progress:
    """The live training line: rewritten in place on a terminal, every 100 steps otherwise."""

    def __init__(self, total: int) -> None:
        self.total, self.tty = total, sys.stdout.isatty()
        self.last = 0.0

    def __call__(self, step: int, loss, correct, active: int) -> None:
        now = time.perf_counter()
        if self.tty and now - self.last > 0.05:
            self.last = now
            print(f"\r  step {step:5d}  loss {float(loss[0]):.4f}  sorted {int(correct[0])}/"
                  f"{self.total}", end="", flush=True)
        elif not self.tty and step % 100 == 0 and step:
            print(f"  step {step:5d}  loss {float(loss[0]):.4f}  sorted {int(correct[0])}/"
                  f"{self.total}", flush=True)

    def finish(self, r) -> None:
        verdict = "solved" if r.solved else "NOT solved (step limit reached)"
        print(f"\r  step {r.steps:5d}  loss {r.loss:.4f}  sorted {r.correct}/{self.total}  "
              f"min p {r.margin:.3f}  -> {verdict} in {r.seconds:.2f} s", flush=True)


class _SweepProgress:
    """A tqdm bar over seeds: solved so far, and how many are still training.

    Seeds leave the batch before the step limit only by being solved (at the limit the rest
    fail together, and the bar closes), so every seed that has left is a solved one.
    """

    def __init__(self, name: str, seeds: int) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=seeds, desc=name, unit="seed", file=sys.stderr, leave=False,
                        disable=None)  # None: only on a terminal
        self.seeds, self.finished = seeds, 0

    def __call__(self, step: int, loss, correct, active: int) -> None:
        done = self.seeds - active  # seeds that left before this step
        self.bar.set_postfix_str(f"solved {done}, training {active}, step {step}", refresh=False)
        if done != self.finished:
            self.bar.update(done - self.finished)  # redraws, postfix included
            self.finished = done

    def __enter__(self) -> _SweepProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.bar.close()
