"""Command line: parse the arguments, run the command (``zeptogpt.commands``), and turn every
way it can end into an exit code. ``zeptogpt`` alone runs the main job.

Nothing ends in a traceback: a user error is one line on stderr and exit 2; what the system
refuses (an output that cannot be written, a name too long) one line and exit 1; a reader that
left, exit 141; Ctrl-C, "interrupted" and exit 130, from the first line ``main`` runs.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from typing import NoReturn

from zeptogpt import commands
from zeptogpt.commands import UserError
from zeptogpt.config import NORMS, POSITIONS, VARIANTS
from zeptogpt.task import MAX_LENGTH, TASKS, InputError, SortTask

USAGE_ERROR = 2  # the user can fix it: one line that says what was expected
FAULT = 1  # the system refused: a full disk, a closed terminal, a name too long
COMMANDS = ("run", "train", "eval", "sort", "trace", "params", "sweep", "plot", "serve",
            "verify", "search", "board", "handcode", "explain", "export")
PLOTS = ("attention", "lens", "weights", "curves")
FALLBACK_SEED = "seed used if a checkpoint has to be trained first"
NAME_MAX = 255  # bytes in one file or folder name: the common file systems' limit
MAX_MESSAGE = 200  # characters of an error message: it quotes what was typed, which can be 1 MB
# What the output's marks become where stdout's encoding cannot show them (ASCII, Latin-1).
PLAIN = str.maketrans({"✓": "ok", "✗": "x", "×": "x", "≥": ">=", "·": "-"})


class Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (``zeptogpt sort: error: ...``), not two."""

    commands: dict[str, argparse.ArgumentParser]  # the subcommands' parsers, by name

    def error(self, message: str) -> NoReturn:
        if len(message) > MAX_MESSAGE:  # argparse quotes what was typed, however long
            message = message[:MAX_MESSAGE] + "..."
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message}\n")


def _shown(text: str, limit: int = 40) -> str:
    """What was typed, quoted and cut to a readable size for an error message."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _integer(text: str, low: int, high: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise argparse.ArgumentTypeError(f"expected {what}, got {_shown(text)}")
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
        value = float("nan")  # refused below, as NaN is
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {_shown(text)}")
    return value


def _file(text: str) -> Path:
    """An argparse type: a path naming a file. ``Path("out/")`` is ``out``, so a name that ends
    in a slash would quietly become a file where a folder was meant."""
    if not text or text.endswith(("/", os.sep)):
        raise argparse.ArgumentTypeError(f"expected a file name, got {_shown(text)}")
    path = Path(text)
    if any(len(os.fsencode(part)) > NAME_MAX for part in path.parts):
        raise argparse.ArgumentTypeError(f"expected a file name, got {_shown(text)}, which has "
                                         f"a name longer than {NAME_MAX} bytes")
    return path


def _port(text: str) -> int:
    return _integer(text, 0, 65535, "a port from 0 to 65535")


def _one_of(names: dict, what: str):
    """An argparse type: one of the keys of ``names`` (the variants, the tasks)."""
    def parse(text: str) -> str:
        if text not in names:
            known = ", ".join(names)
            raise argparse.ArgumentTypeError(f"unknown {what} {_shown(text)} (known: {known})")
        return text
    return parse


def _alphabet(text: str) -> str:
    try:
        SortTask(alphabet=text)  # its checks, and its one-line message
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def _add_task_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", type=_one_of(TASKS, "task"), metavar="NAME",
                   help=f"named task: {', '.join(TASKS)} (abc3, the seed's, is the default)")
    p.add_argument("--alphabet", type=_alphabet, metavar="SYMBOLS",
                   help="the symbols to sort, in Python's order (e.g. 0123456789); overrides "
                        "the task's")
    p.add_argument("--length", type=_up_to(MAX_LENGTH, "a length"), metavar="N",
                   help="symbols per input (overrides the task's)")
    p.add_argument("--min-length", type=_up_to(MAX_LENGTH, "a length"), metavar="N",
                   help="the shortest input: every length from N to --length")
    p.add_argument("--reverse", action="store_const", const=True,
                   help="sort largest first, as sorted(x, reverse=True)")


def _add_model_options(p: argparse.ArgumentParser, checkpoint: bool = True) -> None:
    _add_task_options(p)
    p.add_argument("--variant", type=_one_of(VARIANTS, "variant"), metavar="NAME",
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
    knobs = p.add_argument_group("architecture knobs (docs/board.md)")
    knobs.add_argument("--arch", metavar="NAME",
                       help="an architecture by the name search and board print (e.g. "
                            "e4-h1x2-m0-nonorm-sin-qk); the flags above and below refine it")
    knobs.add_argument("--head-dim", type=_up_to(256, "a head width"), metavar="D",
                       help="each head's width (default E / H; E need not divide by H then)")
    knobs.add_argument("--mlp-width", type=lambda t: _integer(t, 0, 4096, "an MLP width from 0 "
                                                                 "to 4,096"), metavar="M",
                       help="MLP hidden width (overrides --mlp); 0: attention only")
    knobs.add_argument("--norm", type=_one_of(NORMS, "norm"), metavar="KIND",
                       help=f"normalisation: {', '.join(NORMS)} (default layernorm)")
    knobs.add_argument("--positions", type=_one_of(POSITIONS, "kind of positions"),
                       metavar="KIND", help="learned (default), sinusoidal (fixed, not "
                                            "counted) or none; overrides --pos")
    knobs.add_argument("--tie-qk", action="store_const", const=True,
                       help="keys through the queries' weights (W_K = W_Q)")
    knobs.add_argument("--tie-vo", action="store_const", const=True,
                       help="heads write back through their value weights (W_O = W_V^T)")
    knobs.add_argument("--untied-unembed", action="store_const", const=True,
                       help="learn the LM head W_U instead of reading W_E again")
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
                   help="sample this many sequences per step like the seed (default: every "
                        "input up to 20,000, else 256 drawn)")
    p.add_argument("--decay", action="store_const", const=True,
                   help="cosine decay of the learning rate to a tenth at the step limit")


def build_parser() -> argparse.ArgumentParser:
    """The ``zeptogpt`` argument parser with its subcommands."""
    parser = Parser(prog="zeptogpt", description="The smallest GPT that learns Python's sorted(). "
                    "With no command: train, evaluate, trace, save, then sort what you type.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    parser.commands = sub.choices

    run = sub.add_parser("run", help="the main job (what `zeptogpt` alone does)")
    _add_model_options(run)
    _add_train_options(run)

    train = sub.add_parser("train", help="train a model and save its checkpoint")
    _add_model_options(train)
    _add_train_options(train)

    ev = sub.add_parser("eval", help="sort every input with the saved model, ✓/✗ each")
    _add_model_options(ev)
    _add_seed_option(ev, FALLBACK_SEED)

    sort = sub.add_parser("sort", help="sort inputs with the saved model: caa -> aac")
    sort.add_argument("inputs", nargs="+", metavar="INPUT",
                      help="letters to sort, e.g. caa; '-' reads one input per line from stdin")
    sort.add_argument("--trace", action="store_true", help="print the trace of each input")
    _add_model_options(sort)
    _add_seed_option(sort, FALLBACK_SEED)

    trace = sub.add_parser("trace", help="the step-by-step trace of each input")
    trace.add_argument("inputs", nargs="+", metavar="INPUT",
                       help="letters to sort, e.g. caa; '-' reads one input per line from stdin")
    _add_model_options(trace)
    _add_seed_option(trace, FALLBACK_SEED)

    params = sub.add_parser("params", help="the parameter breakdown of an architecture")
    _add_model_options(params, checkpoint=False)

    sweep = sub.add_parser("sweep", help="train many seeds at once and measure reliability")
    _add_task_options(sweep)
    which = sweep.add_mutually_exclusive_group()
    which.add_argument("--variant", type=_one_of(VARIANTS, "variant"), default="e6", metavar="NAME",
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
    sweep.add_argument("--shard-size", type=_up_to(10_000, "a shard size"), metavar="S",
                       help="train the seeds in blocks of S (shard k: seeds first+k*S ..), "
                       "each block's results appended to <name>.jsonl as it finishes; a rerun "
                       "skips the blocks done (default with --backend ray: 256)")
    sweep.add_argument("--backend", choices=("local", "ray"), default="local",
                       help="local: this machine (default); ray: each shard a Ray task, on a "
                       "local Ray or the cluster at --address")
    sweep.add_argument("--address", metavar="HOST:PORT",
                       help="join the Ray cluster at this address (printed by `ray start "
                       "--head`); without it a local Ray is started")

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
                       help="address to bind (default 127.0.0.1: this machine only; ::1 for "
                       "IPv6; 0.0.0.0 or :: opens the page to the network)")

    verify = sub.add_parser("verify", help="check a checkpoint independently: its own greedy "
                            "decoding against sorted(), parameters by the board's rules")
    verify.add_argument("checkpoint", type=_file, metavar="CHECKPOINT",
                        help="the .safetensors file to verify")

    search = sub.add_parser("search", help="train many small architectures over many seeds "
                            "and write the Pareto front (parameters against seeds solved)")
    _add_task_options(search)
    search.add_argument("--seeds", type=_up_to(10_000, "a number of seeds"), default=256,
                        metavar="N", help="seeds per architecture (default 256)")
    search.add_argument("--max-params", type=_up_to(100_000, "a parameter count"), default=60,
                        metavar="N", help="the grid's architectures up to N parameters "
                        "(default 60)")
    search.add_argument("--arch", nargs="+", metavar="NAME",
                        help="search these architectures instead of the grid")
    _add_recipe_options(search)
    search.add_argument("--out", type=_file, metavar="FILE",
                        help="results, one line per architecture, resumed if it exists "
                        "(default runs/search/<task>-<seeds>seeds<recipe>.jsonl)")
    search.add_argument("--threads", type=_up_to(os.cpu_count() or 1, "a number of cores"),
                        metavar="N", help="cores to use (default: all)")
    search.add_argument("--shard-size", type=_up_to(10_000, "a shard size"), metavar="S",
                        help="train each architecture's seeds in blocks of S, each block's "
                        "results kept in <out>.shards/ as it finishes (default with --backend "
                        "ray: 256)")
    search.add_argument("--backend", choices=("local", "ray"), default="local",
                        help="local: this machine (default); ray: each shard a Ray task")
    search.add_argument("--address", metavar="HOST:PORT",
                        help="join the Ray cluster at this address; without it a local Ray "
                        "is started")

    handcode = sub.add_parser("handcode", help="save the hand-coded sorter of a task (four "
                              "numbers, docs/board.md) and verify it")
    _add_task_options(handcode)
    handcode.add_argument("--checkpoint", type=_file, metavar="PATH",
                          help="where to save it (default runs/<task>-hand-coded/"
                               "model.safetensors)")

    explain = sub.add_parser("explain", help="measure how the model sorts (attention, logit "
                             "attribution, ablations, logit lens) and write the page about it")
    _add_model_options(explain)
    _add_seed_option(explain, FALLBACK_SEED)
    explain.add_argument("--out", type=_file, default=Path("docs/how-it-sorts.md"),
                         metavar="FILE", help="the page (default docs/how-it-sorts.md)")
    explain.add_argument("--seeds", type=lambda t: _integer(t, 0, 10_000, "a number of seeds "
                                                            "from 0 to 10,000"), default=256,
                         metavar="N", help="also train N seeds of the architecture and group "
                         "them by how they sort (default 256; 0: skip)")

    export = sub.add_parser("export", help="the model for another library: TransformerLens")
    export.add_argument("--to", choices=("transformer-lens",), required=True,
                        help="the library (transformer-lens: a HookedTransformer, 3.x)")
    export.add_argument("--out", type=_file, required=True, metavar="FILE",
                        help="the file to write (torch.save of its config and weights)")
    _add_model_options(export)
    _add_seed_option(export, FALLBACK_SEED)

    board = sub.add_parser("board", help="SortBoard: every entry verified, and the front")
    board.add_argument("--out", type=_file, metavar="PNG",
                       help="draw the front here too (parameters against seeds solved)")
    return parser


def entry() -> NoReturn:
    """The ``zeptogpt`` program, and ``python -m zeptogpt``: ``main``, then exit with its code."""
    code = main()
    # The work is done: a Ctrl-C now could only interrupt Python's clean-up (torch's finalizers)
    # and print that as a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(code)


def main(argv: list[str] | None = None) -> int:
    """The ``zeptogpt`` command run with ``argv``; its exit code.

    Usage: ``main(["sort", "caa"])``
    """
    stdout, command = sys.stdout, "zeptogpt"
    # A closed stdout (`zeptogpt >&-`) is None: Python's print drops what goes there, and so
    # does this, for every command alike.
    sink = open(os.devnull, "w") if stdout is None else None
    sys.stdout = Output(stdout if sink is None else sink)
    try:
        argv = list(sys.argv[1:] if argv is None else argv)
        parser = build_parser()
        if argv and not argv[0].startswith("-") and argv[0] not in COMMANDS:
            parser.error(f"unknown command {argv[0][:40]!r} (commands: {', '.join(COMMANDS)})")
        if not argv or argv[0] not in COMMANDS and argv[0] not in ("-h", "--help"):
            argv.insert(0, "run")  # `zeptogpt [options]` is the main job
        args, extra = parser.parse_known_args(argv)
        command = f"zeptogpt {args.command}"
        if extra:  # named by the subcommand, which is where they were typed
            parser.commands[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
        code = commands.run(args)
        sys.stdout.flush()  # a full disk shows at the last flush, which must fail here
        return code
    except SystemExit as e:  # argparse's --help (0) and its one-line usage errors (2)
        sys.stdout.flush()
        return e.code if isinstance(e.code, int) else USAGE_ERROR
    except (UserError, InputError) as e:
        print(f"{command}: error: {e}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader left (`zeptogpt sweep | head -1`): not an error of ours
        _silence_stdout()
        return 141
    except OutputError as e:
        _silence_stdout()
        print(f"{command}: error: cannot write the output ({e})", file=sys.stderr)
        return FAULT
    except OSError as e:  # the system refused: a name too long, a file that cannot be read
        where = f"{_shown(os.fsdecode(e.filename))}: " if e.filename else ""
        print(f"{command}: error: {where}{e.strerror or e}", file=sys.stderr)
        return FAULT
    except MemoryError:
        print(f"{command}: error: out of memory", file=sys.stderr)
        return FAULT
    finally:
        sys.stdout = stdout
        if sink is not None:
            sink.close()


class OutputError(Exception):
    """stdout could not be written: a full disk, a closed terminal."""


class Output:
    """stdout as the commands write to it. Marks its encoding cannot show are spelled in ASCII
    (``✓`` becomes ``ok``), anything else it cannot show becomes ``?``, and a failed write
    raises OutputError, so that neither ends in a traceback."""

    def __init__(self, stream) -> None:
        self.stream = stream
        self.encoding = getattr(stream, "encoding", None) or "utf-8"
        try:
            "✓✗×≥·".encode(self.encoding)
            self.plain = False
        except (UnicodeEncodeError, LookupError):
            self.plain = True

    def write(self, text: str) -> int:
        if self.plain:
            text = text.translate(PLAIN).encode(self.encoding, "replace").decode(self.encoding)
        try:
            return self.stream.write(text)
        except BrokenPipeError:
            raise
        except OSError as e:
            raise OutputError(e.strerror or e) from None

    def flush(self) -> None:
        try:
            self.stream.flush()
        except BrokenPipeError:
            raise
        except OSError as e:
            raise OutputError(e.strerror or e) from None

    def __getattr__(self, name: str):  # isatty, fileno, errors, ... as the stream has them
        return getattr(self.stream, name)


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the flush at exit cannot fail a second time."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.__stdout__.fileno())
    except (OSError, AttributeError, ValueError):  # no real stdout (embedded, tests): nothing to do
        pass
