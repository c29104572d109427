"""Command line: `hpsearch master start|status|stop`, `hpsearch worker`, `hpsearch report`, and the
recipe's `check`, `next`, `best`, `ensemble`.

Commands are thin: they parse arguments and call the library. Every HpsearchError becomes one
line on stderr and exit code 2 (the traceback only with --debug).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from hpsearch import __version__
from hpsearch.errors import HpsearchError


def friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn our errors (and a few OS ones) into one clear line and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        debug = click.get_current_context().find_root().params.get("debug")
        try:
            return fn(*args, **kwargs)
        except HpsearchError as e:
            if debug:
                raise
            click.echo(f"hpsearch: error: {e}", err=True)
            sys.exit(2)
        except (PermissionError, IsADirectoryError, NotADirectoryError) as e:
            if debug:
                raise
            click.echo(f"hpsearch: error: {e.strerror}: {e.filename}", err=True)
            sys.exit(2)

    return wrapper


class OneLineErrors(click.Group):
    """Bad command-line arguments print one line (not click's usage block) and exit 2."""

    def main(
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as e:
            where = f" (see '{e.ctx.command_path} --help')" if e.ctx is not None else ""
            click.echo(f"hpsearch: error: {e.format_message()}{where}", err=True)
            sys.exit(2)
        except click.ClickException as e:
            e.show()
            sys.exit(e.exit_code)
        except click.Abort:
            click.echo("Aborted.", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hpsearch")
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
def main(debug: bool) -> None:
    """Coarse-to-fine random hyperparameter search for PyTorch.

    \b
    Quick start:
      hpsearch check sweeps/demo.yaml
      hpsearch master start sweeps/demo.yaml --dir runs/demo
      hpsearch report runs/demo
      hpsearch ensemble runs/demo
      hpsearch next runs/demo -o sweeps/demo-next.yaml
    """


@main.group()
def master() -> None:
    """Run a sweep: plan stages, launch and watch workers, narrow ranges.

    \b
    Example:
      hpsearch master start sweeps/demo.yaml --dir runs/demo
    """


@master.command("start")
@click.argument("sweep_file", type=click.Path(dir_okay=False))
@click.option(
    "--dir",
    "root",
    type=click.Path(file_okay=False),
    help="Sweep directory (default runs/<name>). An existing one is resumed.",
)
@click.option(
    "--workers",
    "-w",
    type=click.IntRange(min=1),
    help="Worker processes (default: the sweep's `workers`, or one per GPU).",
)
@click.option(
    "--launcher", type=click.Choice(["local", "slurm"]), help="Where workers run (default: the sweep's `launcher`)."
)
@click.option("--resume", is_flag=True, help="Require DIR to exist and continue it.")
@click.option("--force", is_flag=True, help="Continue DIR even though it was started with a different sweep file.")
@click.option("--device", help="Device for every worker, e.g. cpu or cuda (default: cuda when available).")
@click.option("--workers-per-gpu", type=click.IntRange(min=1), help="Pack K small workers on each GPU.")
@click.option(
    "--dry-run",
    is_flag=True,
    help="Validate the file and print the plan (ranges, trials x epochs, epoch budget; Slurm: the batch script); "
    "write nothing.",
)
@click.option("--detach", is_flag=True, help="Run the master in the background; its output goes to DIR/master.log.")
@click.option(
    "--no-workers", is_flag=True, help="Start no workers; plan and watch while you start `hpsearch worker` by hand."
)
@friendly
def master_start(sweep_file: str, root: str | None, **kw: Any) -> None:
    """Start (or resume) the sweep in SWEEP_FILE.

    \b
    Example:
      hpsearch master start sweeps/demo.yaml --dir runs/demo --workers 2

    Stage 1 samples the declared ranges; each later stage samples ranges narrowed
    around the previous stage's best runs (moved outward where a best value sits on
    a border). Re-running the same command on the same --dir continues where it stopped.
    """
    from hpsearch.run.master import StartOptions, start

    if kw.pop("dry_run"):
        from hpsearch.run.master import dry_run

        def warn(text: str) -> None:  # what the real start would warn of, on stderr as it writes them
            click.echo(f"warning: {text}", err=True)

        click.echo(dry_run(sweep_file, root, kw.get("workers"), kw.get("launcher"), warn, bool(kw.get("no_workers"))))
        return
    sys.exit(start(sweep_file, root, StartOptions(**kw, sweep_path=sweep_file)))


@master.command("stop")
@click.argument("root", type=click.Path(file_okay=False))
@friendly
def master_stop(root: str) -> None:
    """Stop the sweep in ROOT: workers release their trials, the master exits.

    \b
    Example:
      hpsearch master stop runs/demo
    """
    from hpsearch.run.master import request_stop

    click.echo(request_stop(root))


@master.command("status")
@click.argument("root", type=click.Path(file_okay=False))
@friendly
def master_status(root: str) -> None:
    """Show what the sweep in ROOT is doing: stage, counts, workers and their trials.

    Says whether a master is alive (or since when none is, and how to resume).
    Workers count as alive while their last heartbeat is younger than the sweep's
    stale_after (judged by the worker's clock) and, on this host, their process
    runs. Shows the running trials' epochs and latest metric, the best so far,
    the stage's ETA while it runs, and what is left.

    \b
    Example:
      hpsearch master status runs/demo
    """
    from hpsearch.report.status import status_text

    click.echo(status_text(root))


@main.command()
@click.option("--dir", "root", required=True, type=click.Path(file_okay=False), help="The sweep directory to work on.")
@click.option("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available).")
@click.option("--threads", type=click.IntRange(min=1), help="torch threads (default: torch's choice).")
@click.option("--max-trials", type=click.IntRange(min=1), help="Exit after this many trials.")
@click.option(
    "--exit-when-idle", is_flag=True, help="Exit when no trial is queued instead of waiting for the next stage."
)
@click.option("--id", "worker_id", help="Worker name (default host-pid-random).")
@friendly
def worker(
    root: str,
    device: str | None,
    threads: int | None,
    max_trials: int | None,
    exit_when_idle: bool,
    worker_id: str | None,
) -> None:
    """Claim and train trials of the sweep in --dir until it is done.

    \b
    Example (join a running sweep from another terminal or host):
      hpsearch worker --dir /shared/runs/demo

    It prints what it does: the sweep and stage it joined, each trial claimed and
    how it ended, and why it leaves. Stop it with Ctrl-C or SIGTERM: the trial in
    hand keeps its checkpoint and goes back to the queue.
    """
    from hpsearch.run.worker import WorkerOptions, run_worker

    sys.exit(
        run_worker(
            root,
            WorkerOptions(
                worker_id=worker_id,
                device=device,
                threads=threads,
                max_trials=max_trials,
                exit_when_idle=exit_when_idle,
            ),
        )
    )


@main.command()
@click.argument("root", type=click.Path(file_okay=False))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    help="Output format [default: table; none with --html/--plots/--tensorboard alone].",
)
@click.option("--stage", type=click.IntRange(min=1), help="Only this stage's runs.")
@click.option("--top", type=click.IntRange(min=1), help="Only the N best runs.")
@click.option(
    "--plots", "plots_dir", type=click.Path(file_okay=False), help="Write the plots as PNGs into this folder."
)
@click.option(
    "--html",
    "html_file",
    type=click.Path(dir_okay=False),
    help="Write one self-contained HTML report (plots embedded).",
)
@click.option(
    "--tensorboard",
    "tb_dir",
    type=click.Path(file_okay=False),
    help="Write TensorBoard event files (scalars and HParams) into this folder.",
)
@click.option("--watch", is_flag=True, help="Refresh the status and the ranking until the sweep ends.")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=10.0,
    show_default=True,
    help="Seconds between refreshes with --watch.",
)
@friendly
def report(
    root: str,
    fmt: str | None,
    stage: int | None,
    top: int | None,
    plots_dir: str | None,
    html_file: str | None,
    tb_dir: str | None,
    watch: bool,
    interval: float,
) -> None:
    """Rank the runs in ROOT; show border flags, the ranges of each stage and diagnostics.

    \b
    Examples:
      hpsearch report runs/demo --top 10
      hpsearch report runs/demo --format csv > runs.csv
      hpsearch report runs/demo --html report.html --plots plots/
      hpsearch report runs/demo --tensorboard tb/ && tensorboard --logdir tb/
      hpsearch report runs/demo --watch --interval 5

    --format json follows a stable schema (README, "Reports and plots"). --plots and
    --html need matplotlib (pip install 'hpsearch[plots]'), --tensorboard the tensorboard
    package (pip install 'hpsearch[tensorboard]'); the importance they show needs Optuna
    (pip install 'hpsearch[importance]'). With only --html, --plots or --tensorboard the
    table is not printed: the files written are.
    """
    if watch and fmt not in (None, "table"):
        raise click.BadParameter("--watch shows the table; use --format table", param_hint="--watch")
    if plots_dir or html_file:
        from hpsearch.report.plots import require_matplotlib

        require_matplotlib()
    if tb_dir:
        from hpsearch.report.tensorboard import require_tensorboard

        require_tensorboard()
    pictures = functools.partial(_write_pictures, plots_dir, html_file, tb_dir)
    if watch:
        from hpsearch.report.watch import watch_report

        sys.exit(watch_report(root, interval, stage=stage, top=top or 20, each=pictures))
    from hpsearch.gcpause import gc_paused

    files_only = fmt is None and bool(plots_dir or html_file or tb_dir)
    fmt = fmt or "table"
    notes: list[str] = []
    data = None
    # importing pandas, reading and tabulating build objects by the hundred thousand and leave no
    # cycles: the collector would only walk them again and again (plots, which do, run after)
    with gc_paused():
        from hpsearch.report.tables import render

        if plots_dir or html_file or tb_dir:  # read once for the report and the pictures
            from hpsearch.report.sweepdata import load

            data = load(root, stage=stage)
        text = None if files_only else render(root, fmt, stage=stage, top=top, notes=notes, data=data)
    if text is not None:
        click.echo(text)
    for note in notes if fmt != "table" else []:
        click.echo(f"note: {note}", err=True)
    pictures(data)


@main.command()
@click.argument("sweep_file", type=click.Path(dir_okay=False))
@click.option(
    "--dir",
    "root",
    type=click.Path(file_okay=False),
    help="Sweep directory that receives preflight.json (default runs/<name>, as master start).",
)
@click.option(
    "--write", "write", type=click.Path(dir_okay=False), help="Write the sweep file with the suggested lr range."
)
@friendly
def check(sweep_file: str, root: str | None, write: str | None) -> None:
    """Sanity checks before a sweep: steps 1-3 of the recipe.

    \b
    Examples:
      hpsearch check sweeps/demo.yaml
      hpsearch check sweeps/demo.yaml --write sweeps/demo-lr.yaml

    On one configuration standing for stage 1: a gradient check of the backward pass
    (float64 centred differences), the loss at initialization against ln(C), overfitting
    20 examples, and a learning-rate range test that suggests stage 1's lr range. Prints a
    verdict per check, writes DIR/preflight.json (shown by `hpsearch report --html` once the
    sweep runs in DIR) and exits 1 when a check failed. Python trainables take part through
    a `preflight(params)` function, command programs through environment flags (README,
    "The recipe").
    """
    from hpsearch.recipe.check import run_check

    sys.exit(run_check(sweep_file, root, write, click.echo))


@main.command("next")
@click.argument("root", type=click.Path(file_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the sweep file here (default: print it).")
@click.option(
    "--warm-start",
    is_flag=True,
    help="Carry ROOT's last-stage runs into the new sweep: ranked with its stage 1, they steer its first narrowing.",
)
@friendly
def next_(root: str, output: str | None, warm_start: bool) -> None:
    """Write the follow-up sweep of the sweep in ROOT (step 7: go back to a finer search).

    \b
    Examples:
      hpsearch next runs/demo -o sweeps/demo-next.yaml
      hpsearch next runs/demo -o sweeps/demo-next.yaml --warm-start
      hpsearch master start sweeps/demo-next.yaml

    Same trainable and settings; ranges narrowed around the last stage's top runs, with a
    border value's side moved outward; two stages: the last stage's epochs, then twice as long.
    """
    from hpsearch.recipe.next import next_sweep, write

    text, notes = next_sweep(root, warm_start)
    if output is None:
        click.echo(text, nl=False)
        for line in notes:
            click.echo(line, err=True)
        return
    replaced = Path(output).is_file()
    note = write(text, output)
    for line in notes + ([note] if note else []):
        click.echo(line)
    was = " (it replaced the file that was there)" if replaced else ""
    then = "see the note above before you run it" if note else f"run it with: hpsearch master start {output}"
    click.echo(f"wrote {output}{was}; {then}")


@main.command()
@click.argument("root", type=click.Path(file_okay=False))
@click.option("--top", "-k", type=click.IntRange(min=1), default=1, show_default=True, help="How many configurations.")
@click.option("--format", "fmt", type=click.Choice(["yaml", "json", "args"]), default="yaml", show_default=True)
@friendly
def best(root: str, top: int, fmt: str) -> None:
    """Print the best configuration(s) of the sweep in ROOT with their checkpoint paths.

    \b
    Examples:
      hpsearch best runs/demo
      hpsearch best runs/demo --top 5 --format json
      python train.py $(hpsearch best runs/demo --format args)

    --format args prints one command line per configuration (--lr=0.034 --reg=2e-05).
    """
    from hpsearch.recipe.best import best_configs, render

    click.echo(render(best_configs(root, top), fmt))


@main.command()
@click.argument("root", type=click.Path(file_okay=False))
@click.option("--top", "-k", type=click.IntRange(min=1), default=5, show_default=True, help="Most members (Kmax).")
@friendly
def ensemble(root: str, top: int) -> None:
    """Ensembles from the checkpoints of the sweep in ROOT, measured on the validation set.

    \b
    Example:
      hpsearch ensemble runs/demo --top 5

    Averages the predicted class probabilities of the top K configurations' best checkpoints,
    and of the best run's last K checkpoints, for K = 1 .. --top; averages that run's
    checkpoints' weights too. Writes ROOT/ensemble.json (the HTML report draws the curves).
    Python trainables take part through a `predict(params, state)` function (README, "The recipe").
    """
    from hpsearch.recipe.ensemble import measure, text

    click.echo(text(measure(root, top)))
    click.echo(f"wrote {root}/ensemble.json (hpsearch report {root} --html draws the curves)", err=True)


def _write_pictures(plots_dir: str | None, html_file: str | None, tb_dir: str | None, data: Any) -> None:
    if data is None:
        return
    if plots_dir:
        from hpsearch.report.importance import importance
        from hpsearch.report.plots import write_plots

        paths = write_plots(data, plots_dir, importance(data))
        click.echo(f"wrote {len(paths)} plot(s) to {plots_dir}")
    if html_file:
        from hpsearch.report.html import write_html

        click.echo(f"wrote {write_html(data, html_file)}")
    if tb_dir:
        from hpsearch.report.tensorboard import export

        out, n = export(data, tb_dir)
        click.echo(f"wrote TensorBoard runs of {n} trial(s) to {out}; view them with: tensorboard --logdir {out}")


@main.command("export")
@click.argument("root", type=click.Path(file_okay=False))
@click.option(
    "--mlflow",
    "mlflow_uri",
    default="sqlite:///mlflow.db",
    show_default=True,
    help="MLflow tracking URI (a SQLite file, a server's http:// address, ...).",
)
@click.option("--experiment", help="MLflow experiment name (default: the sweep's name; created if missing).")
@click.option("--checkpoints", is_flag=True, help="Also log each trial's best checkpoint as an artifact.")
@friendly
def export_cmd(root: str, mlflow_uri: str, experiment: str | None, checkpoints: bool) -> None:
    """Log the sweep in ROOT to MLflow: a parent run, one nested run per trial.

    Each trial's run has its parameters, every per-epoch metric (step = epoch), the tags
    stage, status and parent_trial, and with --checkpoints its best checkpoint. Running it
    again adds only what is new (epochs, status); it never duplicates a run. Needs
    pip install 'hpsearch[mlflow]'.

    \b
    Examples:
      hpsearch export runs/demo --mlflow sqlite:///mlflow.db
      hpsearch export runs/demo --mlflow http://localhost:5000 --experiment digits --checkpoints
      mlflow ui --backend-store-uri sqlite:///mlflow.db
    """
    from hpsearch.report.mlflowexport import require_mlflow

    require_mlflow()
    from hpsearch.report.mlflowexport import export
    from hpsearch.report.sweepdata import load

    res = export(load(root), mlflow_uri, experiment, checkpoints)
    click.echo(
        f"MLflow {res.uri}, experiment {res.experiment!r}: sweep run {res.parent_run_id}; "
        f"trial runs: {res.created} created, {res.updated} updated, {res.unchanged} unchanged "
        f"({res.epochs_logged} epoch(s) logged)"
    )


if __name__ == "__main__":
    main()
