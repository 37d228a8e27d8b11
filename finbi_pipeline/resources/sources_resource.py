"""The sources file as a resource, so its path comes from configuration (FINBI_SOURCES)."""

from __future__ import annotations

import dagster as dg

from finbi_pipeline.sources import SourceSpec, load_sources


class SourcesResource(dg.ConfigurableResource):
    """Declared sources; `path` empty means the built-in `interactions` and `sales`."""

    path: str = ""

    def load(self) -> dict[str, SourceSpec]:
        return load_sources(self.path or None)

    def of_kind(self, kind: str) -> list[SourceSpec]:
        return [s for s in self.load().values() if s.kind == kind]
