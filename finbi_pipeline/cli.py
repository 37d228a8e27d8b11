"""The `finbi` command: load files, run the pipeline, generate data, serve the UIs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
import dagster as dg

from finbi_pipeline.uploads import is_upload, landing_prefix

# Beta/preview notices about Dagster's own APIs are for developers, not for this CLI's users.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """FinBI: retail interactions and sales CSVs to a live financial dashboard.

    FINBI_TARGET=local|aws picks the stack (default local: a lake folder, DuckDB and a
    Streamlit dashboard under FINBI_HOME, default ./.finbi).
    """


@main.command()
@click.option("--source", "source_name", required=True, help="A declared source, e.g. sales.")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
def load(source_name: str, files: tuple[str, ...]) -> None:
    """Put FILES into the landing zone as raw/<SOURCE>/<file name>, as an S3 upload would."""
    from finbi_pipeline.definitions import defs
    from finbi_pipeline.resources import resolved_resources

    with _config_errors(), resolved_resources(defs(), "lake", "sources") as resources:
        declared = resources.sources.load()
        if source_name not in declared:
            raise click.UsageError(
                f"unknown source {source_name!r}; declared: {', '.join(sorted(declared))}"
            )
        keys: dict[str, str] = {}  # key: file; every name checked before anything lands
        for file in files:
            key = landing_prefix(source_name) + _upload_name(file)
            if key in keys:
                raise click.UsageError(
                    f"{keys[key]} and {file} would both land as {key}, the second replacing "
                    "the first: rename one"
                )
            keys[key] = file
        for key, file in keys.items():
            replaces = resources.lake.head(key) is not None
            obj = resources.lake.upload_file(Path(file), key)
            click.echo(
                f"loaded {file} -> {key} ({obj.size:,} bytes, version {obj.version})"
                + (": replaces the key's previous file and its rows" if replaces else "")
            )


def _upload_name(file: str) -> str:
    """The file's name, if the pipeline would read a key of that name; else UsageError."""
    from finbi_pipeline.ingest import PATTERN_CHARACTERS

    name = Path(file).name
    # Hidden names are the lake's in-flight temporaries; the sensor would not see them.
    if name.startswith(".") or "/" in name or "\\" in name:
        raise click.UsageError(f"{file}: file names may not start with '.' or hold slashes")
    try:
        name.encode()
    except UnicodeEncodeError:
        printable = name.encode(errors="surrogateescape").decode(errors="backslashreplace")
        raise click.UsageError(
            f"{printable}: the file name is not UTF-8 text, which lake keys (as S3's) "
            "must be: rename the file"
        ) from None
    if not is_upload(name):
        raise click.UsageError(
            f"{file}: a name like this is taken for a temporary file (~ first or last, "
            ".part, .tmp, .crdownload, .swp) and would be ignored: rename the file"
        )
    if any(character in name for character in PATTERN_CHARACTERS):
        raise click.UsageError(
            f"{file}: file names may not hold {', '.join(PATTERN_CHARACTERS)}: "
            "the local engine reads them as a file pattern"
        )
    return name


@main.command()
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    default="INFO",
    show_default=True,
    help="Dagster's console log level for the run.",
)
def run(log_level: str) -> None:
    """Ingest every pending upload and refresh everything downstream, through Dagster.

    Prints uploads, rows accepted / duplicate / quarantined and the main KPIs; exits 1
    when an asset or a blocking check fails.
    """
    from finbi_pipeline.runner import format_summary, run_pipeline

    with _config_errors():
        summary = run_pipeline(log_level=log_level.upper())
    click.echo(format_summary(summary))
    sys.exit(0 if summary.success else 1)


@main.command()
@click.option("--rows", type=click.IntRange(min=1), required=True, help="Interaction rows.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--seed", type=click.IntRange(min=0), default=42, show_default=True)
def generate(rows: int, out: Path, seed: int) -> None:
    """Write realistic synthetic OUT/interactions.csv and OUT/sales.csv (streaming)."""
    from finbi_pipeline.generate import generate_dataset

    with click.progressbar(length=rows, label="interactions", file=sys.stderr) as bar:
        done = [0]

        def progress(rows_done: int, total: int) -> None:
            bar.update(rows_done - done[0])
            done[0] = rows_done

        summary = generate_dataset(rows, out, seed=seed, progress=progress)
    click.echo(
        f"wrote {summary.interaction_rows:,} interactions to {summary.interactions_path} "
        f"and {summary.sales_rows:,} sales lines to {summary.sales_path}"
    )


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8501, show_default=True, type=int)
def dashboard(host: str, port: int) -> None:
    """Serve the live dashboard (loopback unless told otherwise) until Ctrl-C or SIGTERM."""
    from finbi_pipeline.dashboard.server import run_forever

    with _server_errors():
        sys.exit(run_forever(host=host, port=port))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=3000, show_default=True, type=int, help="Dagster UI port.")
@click.option("--dashboard-port", default=8501, show_default=True, type=int)
def serve(host: str, port: int, dashboard_port: int) -> None:
    """Serve the Dagster UI (with its daemon: sensor and schedule) and the dashboard until
    Ctrl-C or SIGTERM."""
    from finbi_pipeline.dashboard import server
    from finbi_pipeline.runner import dagster_home

    with _config_errors():
        dagster_home()
    with _server_errors(), server.stop_signals_interrupt():
        for taken in (port, dashboard_port):  # before either starts
            server.check_port_free(host, taken)
        # Its own session: dagster dev ignores signals sent to it alone; its whole process
        # group is stopped below.
        dagster = subprocess.Popen(
            [sys.executable, "-m", "dagster", "dev", "-m", "finbi_pipeline.definitions",
             "-h", host, "-p", str(port)],
            start_new_session=True,
        )  # fmt: skip
        ui = None  # a dashboard that fails to start stops itself
        try:
            ui = server.serve(host=host, port=dashboard_port)
            click.echo(f"Dagster UI: http://{host}:{port}")
            click.echo(f"Dashboard:  {server.url(host, dashboard_port)}")
            click.echo("Ctrl-C stops both.")
            while dagster.poll() is None and ui.poll() is None:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            if ui is not None:
                server.stop(ui)
            _stop_group(dagster)


@contextmanager
def _config_errors() -> Iterator[None]:
    """A broken sources file or setting as a one-line error, not a traceback."""
    from finbi_pipeline.resources import ConfigError
    from finbi_pipeline.sources import SourceConfigError

    try:
        yield
    except (SourceConfigError, ConfigError) as exc:
        raise click.ClickException(str(exc)) from exc


@contextmanager
def _server_errors() -> Iterator[None]:
    """A server that cannot start (its port taken) as a one-line error."""
    from finbi_pipeline.dashboard.server import ServerStartError

    try:
        yield
    except ServerStartError as exc:
        raise click.ClickException(str(exc)) from exc


def _stop_group(process: subprocess.Popen, timeout: float = 20.0) -> None:
    """Stop a process and its children (dagster dev starts the webserver and daemon)."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


if __name__ == "__main__":
    main()
