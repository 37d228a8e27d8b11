"""A passing fault in an idempotent step is retried; the run still succeeds."""

from pathlib import Path

import dagster as dg

from finbi_pipeline.assets.dashboard import dashboard_dataset
from finbi_pipeline.resources.publisher import BIPublisher


class FailsOncePublisher(BIPublisher):
    """Fails its first refresh, as a throttled or briefly unavailable BI service would."""

    marker: str

    def refresh(self, context) -> dict:
        attempts = Path(self.marker)
        attempts.write_text(attempts.read_text() + "x" if attempts.exists() else "x")
        if len(attempts.read_text()) == 1:
            raise ConnectionError("BI service briefly unavailable")
        return {"attempts": len(attempts.read_text())}


def test_dashboard_refresh_is_retried_after_a_passing_fault(tmp_path, instance):
    marker = tmp_path / "attempts"

    result = dg.materialize(
        [dashboard_dataset],
        resources={"publisher": FailsOncePublisher(marker=str(marker))},
        instance=instance,
    )

    assert result.success
    assert marker.read_text() == "xx"
    (materialization,) = result.asset_materializations_for_node("dashboard_dataset")
    assert materialization.metadata["attempts"].value == 2
