"""The Dagster floor: FinBI's asset graph with every step doing nothing, run the way
`finbi run` runs it (a fresh process, `execute_in_process` on a persistent SQLite instance).

What a `finbi run` costs beyond this is FinBI's: its imports (DuckDB, sqlglot), its
SQL, its metadata. `bench_e2e.py` times it beside the DuckDB floor.

    python bench/dagster_floor.py describe > graph.json   # imports FinBI: the graph's shape
    python bench/dagster_floor.py prepare graph.json HOME # a Dagster home, one run stored
    python bench/dagster_floor.py run graph.json HOME ingest|refresh

`run ingest` adds one new upload partition and runs every step over it (an incremental run
of one upload); `run refresh` runs every step but the raw one (a run with nothing new).
Only `describe` imports FinBI; `prepare` and `run` import Dagster alone.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from pathlib import Path


def describe() -> dict:
    """FinBI's steps (each op's assets, with deps and partitions, and checks), its Dagster
    instance settings and the tags a run over a range of uploads carries."""
    import warnings

    warnings.simplefilter("ignore")
    from finbi_pipeline.definitions import defs
    from finbi_pipeline.runner import DAGSTER_YAML
    from finbi_pipeline.sensors import RANGE_END_TAG, RANGE_START_TAG
    from finbi_pipeline.uploads import uploads_partitions

    definitions = defs()
    steps = []
    for assets_def in definitions.assets:
        steps.append(
            {
                "name": assets_def.node_def.name,
                "assets": [
                    {
                        "key": spec.key.to_user_string(),
                        "deps": [dep.asset_key.to_user_string() for dep in spec.deps],
                        "partitioned": spec.partitions_def is not None,
                    }
                    for spec in assets_def.specs
                ],
                "checks": [_check_json(spec) for spec in assets_def.check_specs],
            }
        )
    for checks_def in definitions.asset_checks:
        for spec in checks_def.check_specs:
            steps.append(
                {
                    "name": checks_def.node_def.name,
                    "assets": [],
                    "checks": [_check_json(spec)],
                }
            )
    return {
        "dagster_yaml": DAGSTER_YAML,
        "range_tags": [RANGE_START_TAG, RANGE_END_TAG],
        "partitions": uploads_partitions.name,
        "steps": steps,
    }


def _check_json(spec) -> dict:
    """An asset check spec as JSON: its asset, name and the other assets it reads."""
    return {
        "asset": spec.asset_key.to_user_string(),
        "name": spec.name,
        "deps": [dep.asset_key.to_user_string() for dep in spec.additional_deps],
    }


def _definitions(graph: dict):
    import dagster as dg

    uploads = dg.DynamicPartitionsDefinition(name=graph["partitions"])
    nodes = []
    for step in graph["steps"]:
        checks = [
            dg.AssetCheckSpec(c["name"], asset=c["asset"], additional_deps=c["deps"], blocking=True)
            for c in step["checks"]
        ]
        if not step["assets"]:
            nodes.append(_standalone_check(dg, step["name"], checks[0]))
            continue
        partitioned = any(a["partitioned"] for a in step["assets"])
        specs = [
            dg.AssetSpec(
                a["key"], deps=a["deps"], partitions_def=uploads if a["partitioned"] else None
            )
            for a in step["assets"]
        ]
        nodes.append(_noop_assets(dg, step["name"], specs, checks, partitioned))
    return dg.Definitions(
        assets=[n for n in nodes if isinstance(n, dg.AssetsDefinition)],
        asset_checks=[n for n in nodes if not isinstance(n, dg.AssetsDefinition)],
        jobs=[
            dg.define_asset_job("ingest_job", selection=dg.AssetSelection.all()),
            dg.define_asset_job(
                "refresh_job",
                selection=dg.AssetSelection.all() - dg.AssetSelection.assets("raw_uploads"),
            ),
        ],
        executor=dg.in_process_executor,
    )


def _noop_assets(dg, name, specs, checks, partitioned):
    @dg.multi_asset(
        name=name,
        specs=specs,
        check_specs=checks,
        backfill_policy=dg.BackfillPolicy.single_run() if partitioned else None,
    )
    def _step(context):
        for spec in specs:
            yield dg.MaterializeResult(asset_key=spec.key, metadata={"dagster/row_count": 0})
        for check in checks:
            yield dg.AssetCheckResult(asset_key=check.asset_key, check_name=check.name, passed=True)

    return _step


def _standalone_check(dg, name, spec):
    @dg.asset_check(
        asset=spec.asset_key,
        name=spec.name,
        additional_deps=[dep.asset_key for dep in spec.additional_deps],
        blocking=True,
    )
    def _check():
        return dg.AssetCheckResult(passed=True)

    return _check


def run(graph: dict, home: Path, job_name: str) -> None:
    import dagster as dg

    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(graph["dagster_yaml"])
    os.environ["DAGSTER_HOME"] = str(home)
    instance = dg.DagsterInstance.get()
    tags = {}
    if job_name == "ingest":
        key = f"upload-{uuid.uuid4().hex[:8]}.csv"
        instance.add_dynamic_partitions(graph["partitions"], [key])
        tags = {tag: key for tag in graph["range_tags"]}
    job = _definitions(graph).resolve_job_def(f"{job_name}_job")
    # As `finbi run` logs: INFO to the console.
    run_config = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
    result = job.execute_in_process(
        run_config=run_config, instance=instance, tags=tags, raise_on_error=True
    )
    print(f"status: {'ok' if result.success else 'failed'}")


def main() -> None:
    command, *args = sys.argv[1:] or ["--help"]
    if command == "describe":
        print(json.dumps(describe(), indent=1))
    elif command in ("prepare", "run"):
        graph = json.loads(Path(args[0]).read_text())
        run(graph, Path(args[1]), "ingest" if command == "prepare" else args[2])
    else:
        print(__doc__)


if __name__ == "__main__":
    main()
