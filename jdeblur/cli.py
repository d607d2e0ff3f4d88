"""jdeblur's command line: train, eval, deblur, export, sweep, report, import-weights.

The ``jdeblur`` command of an installed package, and ``python launch.py`` in a checkout:

    jdeblur                               # the default experiment (quickstart) into a fresh workdir
    jdeblur train --config experiments/quickstart.py[:runlocal] --workdir DIR [--config.F=V ...]
    jdeblur eval --workdir DIR [--split test] [--convention default]
    jdeblur deblur --workdir DIR --input FILE|FOLDER|GLOB --output FOLDER [--tile N] [--ensemble]
    jdeblur export --workdir DIR --format stablehlo|onnx --output FILE [--tile H W]
    jdeblur sweep --config experiments/X.py --root DIR [--dry-run]
    jdeblur report --root DIR
    jdeblur import-weights --checkpoint FILE.pth --config experiments/X.py[:arg] --workdir DIR

Experiments are named by path anywhere, and by name (``quickstart:runlocal``) from a checkout.

Errors in what the user gave (a missing file, a misspelt config field, an unknown model, a full disk)
print one line, ``error: ...``, and exit with code 2, before anything is written where possible. A
failed run (a non-finite loss) prints one line and exits with 1; anything else is a bug in jdeblur:
exit 1, one line saying where the full traceback was written (``jdeblur.failure_report``). The
libraries' log output stays off the terminal; ``--debug`` shows it, and tracebacks. Without a
subcommand, the arguments are those of ``train``.
"""
import argparse
import datetime
import os
import pathlib
import sys

DEFAULT_EXPERIMENT = "quickstart"
INTERRUPTED_EXIT = 130


def split_overrides(argv: list[str]) -> tuple[list[str], list[str]]:
    """Separates ``--config.FIELD=VALUE`` (or ``--config.FIELD VALUE``) overrides from the other arguments."""
    rest, overrides, i = [], [], 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--config."):
            if "=" not in arg and i + 1 < len(argv):
                arg, i = f"{arg}={argv[i + 1]}", i + 1
            overrides.append(arg.removeprefix("--config."))
        else:
            rest.append(arg)
        i += 1
    return rest, overrides


def int_at_least(minimum: int):
    """An argparse type: an integer >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}")
        return value

    return parse


def program() -> str:
    """How the user ran this: ``python launch.py`` from a checkout, else the installed ``jdeblur``."""
    return "python launch.py" if os.path.basename(sys.argv[0]) == "launch.py" else "jdeblur"


def add_distributed_flags(parser):
    group = parser.add_argument_group("several hosts (jax.distributed; default: read from SLURM/MPI/TPU environment)")
    group.add_argument("--coordinator", help="address:port of process 0")
    group.add_argument("--num-processes", type=int)
    group.add_argument("--process-id", type=int)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=program().removeprefix("python "), description=__doc__.split("\n\n")[0],
        epilog="Run a subcommand with --help for its options. With no subcommand: train (the default experiment "
               "unless --config is given).",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command")

    train = sub.add_parser("train", help="train an experiment (resumes if the workdir holds checkpoints)",
                           description="Train an experiment; rerun the same command to resume. "
                                       "Override any config field with --config.FIELD=VALUE.")
    train.add_argument("--config", default=DEFAULT_EXPERIMENT,
                       help="experiments/NAME.py[:arg] or NAME[:arg] (default: %(default)s)")
    train.add_argument("--workdir",
                       help="where checkpoints, logs and results go (default: a fresh runs/NAME-TIMESTAMP)")
    train.add_argument("--stop-after", type=int_at_least(1), default=None, metavar="STEPS",
                       help="end after this many steps in all, with a checkpoint (e.g. to fit a time slot); "
                            "rerun without it to continue")
    add_distributed_flags(train)

    ev = sub.add_parser("eval", help="score a trained run's best checkpoint on a split",
                        description="Score the best checkpoint beside the blurred input and classical baselines; "
                                    "writes eval_SPLIT_CONVENTION.md/.csv in the workdir (and the gains by noise "
                                    "level and blur family where the run's eval config asks for them). "
                                    "--config.* overrides change how the run is evaluated, e.g. "
                                    "--config.model.kwargs=\"{'stages': 8}\" runs an unfolded model for more "
                                    "iterations (plug-and-play with its trained prior).")
    ev.add_argument("--workdir", required=True)
    ev.add_argument("--split", default=None, help="dataset split (default: the experiment's eval split)")
    ev.add_argument("--convention", default=None, help="metric convention: default, uint8, basicsr_y, nafnet, "
                                                       "restormer (default: the experiment's)")
    ev.add_argument("--checkpoint", default="best", help="best, latest or a step number")
    ev.add_argument("--max-images", type=int_at_least(1), default=None, help="score only the first N images")

    db = sub.add_parser("deblur", help="deblur your own photos with a trained run",
                        description="Deblur image files with a workdir's best checkpoint; writes PNGs (or --format) "
                                    "with the same size, channels, bit depth and base names, upright, keeping each "
                                    "photo's colour profile and EXIF data (CMYK and L*a*b* become RGB).")
    db.add_argument("--workdir", required=True)
    db.add_argument("--input", required=True, help="an image file, a folder (recursive) or a glob pattern (quoted)")
    db.add_argument("--output", required=True, help="output folder (created; existing results are not overwritten "
                                                    "unless --overwrite or skipped with --skip-existing)")
    db.add_argument("--tile", type=int_at_least(1), default=None,
                    help="tile side in pixels (default: from --max-pixels)")
    db.add_argument("--max-pixels", type=int_at_least(1), default=1024 * 1024,
                    help="pixels per model call; larger images are tiled (default: %(default)s)")
    db.add_argument("--overlap", type=int_at_least(0), default=64, help="tile overlap in pixels")
    db.add_argument("--ensemble", action="store_true", help="average over 8 flips/rotations (8x slower)")
    db.add_argument("--checkpoint", default="best", help="best, latest or a step number")
    db.add_argument("--overwrite", action="store_true", help="replace results already in --output")
    db.add_argument("--skip-existing", action="store_true",
                    help="keep the results already in --output and deblur only the others (finishes an "
                         "interrupted run)")
    db.add_argument("--format", default="png", help="png (default; 8/16-bit, alpha), tiff (the same) or jpeg "
                                                    "(8-bit, no alpha)")
    db.add_argument("--quality", type=int_at_least(1), default=95, help="JPEG quality, 1-95 (default: %(default)s)")
    db.add_argument("--kernel", default=None,
                    help="non-blind models: the blur kernel of every input, as .npy or a grayscale PNG/TIFF "
                         "(normalised to sum 1)")
    db.add_argument("--noise-sigma", type=float, default=None,
                    help="non-blind models: the noise standard deviation in [0, 1] units (0.01 = 2.55/255); "
                         "default: estimated from each image (Donoho's wavelet estimator)")

    ex = sub.add_parser("export", help="write a trained model as a StableHLO or ONNX file for deployment",
                        description="Write the model of a workdir as one self-contained file computing it on "
                                    "(1, H, W, 3) float32 tiles in [0, 1]: StableHLO (jax.export; CPU and CUDA) or "
                                    "ONNX (needs: pip install jax2onnx onnxruntime). Tiling, padding and clipping "
                                    "stay outside the file (docs/api.md).")
    ex.add_argument("--workdir", required=True)
    ex.add_argument("--format", required=True, help="stablehlo or onnx")
    ex.add_argument("--output", required=True, help="the file to write")
    ex.add_argument("--tile", type=int_at_least(1), nargs=2, default=(256, 256), metavar=("H", "W"),
                    help="the tile size the file computes, multiples of the model's size multiple "
                         "(default: %(default)s)")
    ex.add_argument("--checkpoint", default="best", help="best, latest or a step number")

    sw = sub.add_parser("sweep", help="run (or print) every run of an experiment's declared sweep",
                        description="Expand get_sweep() of the experiment into one workdir per point and seed; "
                                    "run unfinished ones here, or print the commands with --dry-run. "
                                    "--config.FIELD=VALUE overrides are passed to every run.")
    sw.add_argument("--config", required=True)
    sw.add_argument("--root", required=True, help="folder holding one workdir per run")
    sw.add_argument("--dry-run", action="store_true", help="print the train commands instead of running them")

    rp = sub.add_parser("report", help="gather a sweep into a table over seeds",
                        description="Mean and standard deviation over seeds per point, as markdown, CSV and a plot.")
    rp.add_argument("--root", required=True)

    iw = sub.add_parser("import-weights", help="write a workdir from a published checkpoint (.pth, .safetensors)",
                        description="Read a PyTorch or safetensors checkpoint of the official code as data (no "
                                    "code in it runs), map it onto the experiment's model, and write a workdir "
                                    "that eval, deblur and train's --config.train.init_from read. "
                                    "--config.FIELD=VALUE overrides apply to the workdir's config.")
    iw.add_argument("--checkpoint", required=True, help="the checkpoint file")
    iw.add_argument("--config", required=True, help="experiments/NAME.py[:arg] whose model the weights fit")
    iw.add_argument("--workdir", required=True, help="a new folder")
    iw.add_argument("--param-key", default=None,
                    help="the entry holding the tensors in a wrapping dict (default: params, params_ema, "
                         "state_dict, model or net, the first present)")
    return parser


def parse_command_line(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """Parses ``argv`` into (arguments, config overrides); without a subcommand, the command is ``train``."""
    rest, overrides = split_overrides(argv)
    parser = build_parser()
    first = next((i for i, arg in enumerate(rest) if arg != "--debug"), len(rest))
    if first == len(rest) or rest[first] not in (*COMMANDS, "-h", "--help"):
        rest = rest[:first] + ["train"] + rest[first:]
    args = parser.parse_args(rest)
    if overrides and args.command not in ("train", "sweep", "eval", "import-weights"):
        parser.error(f"--config.* overrides apply to train, sweep, eval and import-weights, not {args.command}")
    return args, overrides


def default_workdir(spec: str, *, root: pathlib.Path | None = None,
                    now: datetime.datetime | None = None) -> pathlib.Path:
    """A fresh workdir ``root/NAME-YYYYmmdd-HHMMSS`` for experiment ``spec`` (suffixed if taken);
    ``root`` defaults to ``runs/`` in the checkout (in the current folder for an installed package)."""
    from jdeblur.config import CHECKOUT

    root = (CHECKOUT or pathlib.Path()) / "runs" if root is None else root
    name = pathlib.Path(spec.partition(":")[0]).stem
    stamp = (now or datetime.datetime.now()).strftime("%Y%m%d-%H%M%S")
    workdir, n = root / f"{name}-{stamp}", 1
    while workdir.exists():
        n += 1
        workdir = root / f"{name}-{stamp}-{n}"
    return workdir


def cmd_train(args, overrides) -> int:
    from jdeblur import config as cfglib
    from jdeblur.checks import check_folder_writable
    from jdeblur.train import gains, parallel
    from jdeblur.train.defaults import validate
    from jdeblur.train.evaluate import format_table
    from jdeblur.train.loop import train_and_evaluate

    parallel.initialize_distributed(args.coordinator, args.num_processes, args.process_id)
    config = cfglib.load_config(args.config, overrides)
    validate(config)
    workdir = pathlib.Path(args.workdir) if args.workdir else default_workdir(args.config)
    check_folder_writable(workdir, "--workdir")

    print(f"training {args.config} in {workdir}", flush=True)
    final = train_and_evaluate(config, workdir, stop_after=args.stop_after)
    if final is None:
        print(f"stopped after step {args.stop_after} with a checkpoint in {workdir}; rerun without "
              f"--stop-after to continue")
        return 0
    label = final["model_label"]
    print(format_table(final["results"], final["convention"], model=label,
                       title=f"split {final['split']}, step {final['step']}"))
    for split, table in final["splits"].items():
        print()
        print(format_table(table, final["convention"], model=label, title=f"split {split}, step {final['step']}"))
    for split, by_noise in final.get("by_noise", {}).items():
        print()
        print(gains.format_gains(by_noise, config, convention=final["convention"], model=label,
                                 title=f"split {split}, step {final['step']}"))
    print(f"\nworkdir {workdir}: config.json (the full config), run.json (commit, packages, devices), "
          f"metrics.jsonl, eval.jsonl, final.json, curves.png, samples/, checkpoints/, tensorboard/")
    print(f"next: {program()} deblur --workdir {workdir} --input YOUR_PHOTOS --output OUTPUT_FOLDER")
    return 0


def cmd_eval(args, overrides) -> int:
    from jdeblur import metrics
    from jdeblur.checks import check_choice
    from jdeblur.train.evaluate import evaluate_workdir

    if args.convention is not None:
        check_choice(args.convention, "--convention", metrics.CONVENTIONS)
    evaluate_workdir(args.workdir, split=args.split, convention=args.convention, which=args.checkpoint,
                     max_images=args.max_images, overrides=overrides, echo=print)
    return 0


def cmd_deblur(args, overrides) -> int:
    from jdeblur.deblurrer import deblur_files

    deblur_files(args.workdir, args.input, args.output, tile=args.tile, max_pixels=args.max_pixels,
                 overlap=args.overlap, ensemble=args.ensemble, which=args.checkpoint, overwrite=args.overwrite,
                 skip_existing=args.skip_existing, kernel=args.kernel, noise_sigma=args.noise_sigma,
                 fmt=args.format, quality=args.quality)
    return 0


def cmd_export(args, overrides) -> int:
    from jdeblur.export import export_workdir

    path = export_workdir(args.workdir, args.format, args.output, tile=tuple(args.tile), checkpoint=args.checkpoint)
    print(f"wrote {path} ({args.format}, tiles of 1x{args.tile[0]}x{args.tile[1]}x3 float32)")
    return 0


def cmd_sweep(args, overrides) -> int:
    from jdeblur import sweep

    sweep.run_sweep(args.config, args.root, extra_overrides=[f"--config.{o}" for o in overrides],
                    dry_run=args.dry_run)
    return 0


def cmd_report(args, overrides) -> int:
    from jdeblur import sweep

    paths = sweep.write_report(args.root)
    print(paths["md"].read_text())
    print("written: " + ", ".join(str(p) for p in paths.values()))
    return 0


def cmd_import_weights(args, overrides) -> int:
    from jdeblur import config as cfglib
    from jdeblur.weights.importer import import_weights

    config = cfglib.load_config(args.config, overrides)
    source = import_weights(args.checkpoint, config, args.workdir, param_key=args.param_key)
    print(f"imported {source['tensors']} tensors from {source['path']} (sha256 {source['sha256']}) into "
          f"{args.workdir} as {config.model.name} {config.model.variant}")
    print(f"next: {program()} eval --workdir {args.workdir}  |  {program()} deblur --workdir "
          f"{args.workdir} --input PHOTOS --output FOLDER  |  {program()} train --config {args.config} "
          f"--config.train.init_from={args.workdir} --workdir NEW")
    return 0


COMMANDS = {"train": cmd_train, "eval": cmd_eval, "deblur": cmd_deblur, "export": cmd_export, "sweep": cmd_sweep,
            "report": cmd_report, "import-weights": cmd_import_weights}


def main(argv=None) -> int:
    if "JDEBLUR_SWEEP_PID" in os.environ:  # a run of a sweep: it ends when the sweep does
        from jdeblur.sweep import die_with_sweep

        die_with_sweep()
    args, overrides = parse_command_line(list(sys.argv[1:] if argv is None else argv))
    # Imported after parsing: --help stays fast, without importing jax.
    from jdeblur import compilation_cache, failure_report, host_memory

    # The user's mistakes: one line, exit 2; a failed run: one line, exit 1; anything else is a bug:
    # one line saying so and where its traceback went (jdeblur.failure_report). --debug: the traceback.
    with failure_report.quiet_libraries(not args.debug, until_exit=argv is None) as captured:
        try:
            if argv is None:  # this process is the command; before its first computation
                host_memory.keep_freed_memory()
            compilation_cache.enable()  # every command compiles; later runs read the executables back
            return COMMANDS[args.command](args, overrides)
        except KeyboardInterrupt:
            print("interrupted; rerun the same command to resume", file=sys.stderr)
            return INTERRUPTED_EXIT
        except Exception as e:
            if args.debug:
                raise
            code, line = failure_report.report(e, folder=getattr(args, "workdir", None) or getattr(args, "root", None),
                                               captured=captured)
            print(line, file=sys.stderr)
            return code


def run() -> None:
    """The ``jdeblur`` console script."""
    sys.exit(main())


if __name__ == "__main__":
    run()
