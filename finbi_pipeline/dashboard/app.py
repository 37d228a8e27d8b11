"""FinBI dashboard: the local stand-in for QuickSight (Streamlit + Plotly).

Run it with `finbi dashboard` (see `server.py`) or `streamlit run app.py`. It reads only the
serving extract `$FINBI_HOME/dashboard/serving.duckdb` (see `extract.py`), read-only, and
notices a newly swapped-in extract within `REFRESH_SECONDS` without a restart.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from pathlib import Path

import duckdb
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from finbi_pipeline.dashboard import queries
from finbi_pipeline.dashboard.extract import EXTRACT_VERSION, serving_path
from finbi_pipeline.dashboard.queries import GRAINS, Dimensions, Filters, Kpis
from finbi_pipeline.money import format_money

TITLE = "FinBI — retail finance dashboard"
REFRESH_SECONDS = 2
TIMELINE_LIMIT = 500  # events listed in a customer's timeline
# From the project folder, which holds the bundled sample in data/.
EMPTY_STATE_COMMANDS = (
    "finbi load --source interactions data/interactions.csv\n"
    "finbi load --source sales data/sales.csv\n"
    "finbi run"
)

EVENT_COLOURS = {"VIEW": "#4C78A8", "ADD_TO_CART": "#F58518", "PURCHASE": "#54A24B"}
REVENUE_COLOURS = {"Gross": "#4C78A8", "Returns": "#E45756", "Net": "#54A24B"}
CHART_CONFIG = {"displayModeBar": False}

# (label, Kpis field, kind, delta colour): kind picks the value and delta formatting.
KPI_CARDS = (
    ("Views", "views", "count", "normal"),
    ("Add-to-carts", "add_to_carts", "count", "normal"),
    ("Purchases", "purchases", "count", "normal"),
    ("Conversion rate", "conversion_rate", "rate", "normal"),
    ("Orders", "orders", "count", "normal"),
    ("Units", "units", "count", "normal"),
    ("Gross revenue", "gross_revenue", "money", "normal"),
    ("Returns", "returns_value", "money", "inverse"),  # more returns is bad news
    ("Net revenue", "net_revenue", "money", "normal"),
    ("Avg order value", "average_order_value", "money", "normal"),
)


# --------------------------------------------------------------------------- formatting


def format_count(value: int) -> str:
    return f"{value:,}"


def format_rate(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.2f}%"


def format_compact(value) -> str:
    """3,567,801.39 -> 3.57M, 264,301.92 -> 264.30K: what fits on a KPI card."""
    for size, suffix in ((10**12, "T"), (10**9, "B"), (10**6, "M"), (10**3, "K")):
        if abs(value) >= size:
            return f"{Decimal(value) / size:,.2f}{suffix}"
    return format_count(value)


# From these sizes up a KPI card shows the compact form (the exact one is in its tooltip):
# about nine characters fit on a card of a wide layout.
COMPACT_FROM = {"count": 10_000_000, "money": 100_000}


def format_value(kind: str, value, *, compact: bool = False) -> str:
    if kind == "rate" or value is None:
        return format_rate(value)
    if compact and abs(value) >= COMPACT_FROM[kind]:
        return format_compact(value)
    return format_count(value) if kind == "count" else format_money(value)


def format_delta(kind: str, delta, *, compact: bool = False) -> str | None:
    if delta is None:
        return None
    if kind == "rate":
        return f"{delta * 100:+.2f} pp"
    sign = "-" if delta < 0 else "+"
    return sign + format_value(kind, abs(delta), compact=compact)


# --------------------------------------------------------------------------- data access


@st.cache_resource(max_entries=2, show_spinner=False)
def _extract_connection(path: str, signature: tuple[int, int, int]) -> duckdb.DuckDBPyConnection:
    """One read-only connection per extract version, shared by all sessions.

    The signature is part of the cache key, so a swapped-in extract gets a new connection.
    An evicted connection is not closed here: another session may still be reading through
    a cursor of it, and DuckDB lets go of the old file when the last cursor is gone.
    """
    return queries.open_extract(Path(path))


@st.cache_data(max_entries=4, show_spinner=False)
def _dimensions(path: str, signature: tuple[int, int, int]) -> Dimensions:
    with queries.reader(_extract_connection(path, signature)) as con:
        return queries.dimensions(con)


@st.cache_data(max_entries=4, show_spinner=False)
def _user_options(path: str, signature: tuple[int, int, int]) -> list[str]:
    with queries.reader(_extract_connection(path, signature)) as con:
        return queries.user_options(con)


# --------------------------------------------------------------------------- page parts


@st.fragment(run_every=REFRESH_SECONDS)
def _watch_for_new_extract(path: str, shown: tuple[int, int, int] | None) -> None:
    """Re-run the whole page once the extract on disk is not the one shown.

    Only a stat() every few seconds: cheap, and it works across processes (the pipeline
    swaps the file in from another process).
    """
    if queries.extract_signature(Path(path)) != shown:
        st.rerun(scope="app")


def _empty_state(path: Path, why: str, headline: str = "No data to show yet.") -> None:
    st.info(f"**{headline}** {why}", icon="📭")
    st.markdown(
        "Load some data and run the pipeline (here with the sample in the project's `data/`):"
    )
    st.code(EMPTY_STATE_COMMANDS, language="bash")
    st.caption(
        f"This page reads `{path}` and shows the data on its own once the pipeline has "
        "refreshed it: no restart needed."
    )


def _keep_known(key: str, options: list[str]) -> None:
    """Drop selections that a new extract no longer offers (a widget rejects unknown values)."""
    if key in st.session_state:
        st.session_state[key] = [v for v in st.session_state[key] if v in options]


def _sync_date_range(first: date, last: date) -> None:
    """Default the range to the whole extract, and follow it when a new extract grows,
    unless the viewer picked a range of their own that still fits."""
    state = st.session_state
    bounds = (first, last)
    chosen = tuple(state.get("date_range") or ())
    untouched = chosen == state.get("date_range_bounds")
    out_of_bounds = any(d < first or d > last for d in chosen)
    if not chosen or untouched or out_of_bounds:
        state["date_range"] = bounds
    state["date_range_bounds"] = bounds


def _sidebar_filters(dims: Dimensions, users: list[str]) -> Filters:
    sidebar = st.sidebar
    sidebar.header("Filters")
    user_id = sidebar.selectbox(
        "Customer (user_id)",
        users,
        index=None,
        placeholder="All customers: type an id",
        accept_new_options=True,
        key="user_id",
        help="The most active customers are listed; any user_id can be typed.",
    )
    _keep_known("event_types", dims.event_types)
    event_types = sidebar.multiselect(
        "Event type",
        dims.event_types,
        placeholder="All event types",
        key="event_types",
        help="Applies to interaction KPIs and charts. Sales figures follow the date, "
        "source and customer filters.",
    )
    _sync_date_range(dims.first_date, dims.last_date)
    picked = sidebar.date_input(
        "Date range",
        min_value=dims.first_date,
        max_value=dims.last_date,
        key="date_range",
        format="YYYY-MM-DD",
    )
    _keep_known("sources", dims.sources)
    sources = sidebar.multiselect("Source", dims.sources, placeholder="All sources", key="sources")

    # While a range is being picked in the calendar, only its start is known.
    start = picked[0] if picked else dims.first_date
    end = picked[1] if len(picked) > 1 else start
    return Filters(
        start=start,
        end=end,
        event_types=tuple(event_types) or None,  # nothing selected means all
        sources=tuple(sources) or None,
        user_id=user_id or None,
    )


def _kpi_cards(current: Kpis, previous: Kpis, f: Filters) -> None:
    deltas = queries.kpi_deltas(current, previous)
    before = f.previous_period()
    help_text = f"Change vs the previous {f.days} days ({before.start} to {before.end})."
    for row in (KPI_CARDS[:5], KPI_CARDS[5:]):
        for column, (label, field, kind, colour) in zip(st.columns(5), row, strict=True):
            value = getattr(current, field)
            shown, exact = format_value(kind, value, compact=True), format_value(kind, value)
            column.metric(
                label,
                shown,
                delta=format_delta(kind, deltas[field], compact=True),
                delta_color=colour,
                help=help_text if shown == exact else f"Exactly {exact}. {help_text}",
                border=True,
                height="stretch",  # cards without a delta as tall as the others
            )


def _colour_map(event_types: list[str]) -> dict[str, str]:
    others = [t for t in event_types if t not in EVENT_COLOURS]
    palette = px.colors.qualitative.Set2
    return {**EVENT_COLOURS, **{t: palette[i % len(palette)] for i, t in enumerate(others)}}


def _chart(fig: go.Figure, height: int = 340) -> None:
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10), legend_title_text="")
    st.plotly_chart(fig, width="stretch", config=CHART_CONFIG)


def _time_axis(fig: go.Figure, grain: str, periods: int) -> None:
    """Label periods, not clock times: with few points Plotly would put ticks at 12:00."""
    tick = {"day": 86_400_000, "week": 7 * 86_400_000, "month": "M1"}[grain]
    fig.update_xaxes(
        tickformat="%b %Y" if grain == "month" else "%d %b %Y",
        dtick=tick if periods <= 16 else None,
    )


def _ranking(items, value: str, title: str, colour: str, value_format: str) -> None:
    """Horizontal bars, best at the top, values written on the bars."""
    fig = px.bar(
        items.iloc[::-1],
        x=value,
        y="item_id",
        orientation="h",
        title=title,
        color_discrete_sequence=[colour],
    )
    fig.update_traces(texttemplate=f"%{{x:{value_format}}}", textposition="auto")
    fig.update_yaxes(type="category", title=None)
    fig.update_xaxes(visible=False)
    _chart(fig)


def _no_data(what: str) -> None:
    st.info(f"No {what} for these filters.")


def _event_charts(con, f: Filters, current: Kpis, event_order: list[str]) -> str:
    """Interaction charts; returns the chosen time grain, which the sales charts share."""
    colours = _colour_map(event_order)
    order = {"event_type": event_order}  # funnel order first, the same in every chart
    left, right = st.columns(2)
    with left:
        by_type = queries.events_by_type(con, f)
        if by_type.empty:
            _no_data("events")
        else:
            fig = px.pie(
                by_type,
                names="event_type",
                values="event_count",
                hole=0.55,
                color="event_type",
                color_discrete_map=colours,
                category_orders=order,
                title="Events by type",
            )
            # Labels inside the ring (outside ones get clipped); the legend names small slices.
            fig.update_traces(textinfo="percent", textposition="inside", sort=False)
            fig.update_layout(uniformtext_minsize=11, uniformtext_mode="hide")
            _chart(fig)
    with right:
        stages = queries.funnel(current, f.event_types)
        if stages["event_count"].sum() == 0:
            _no_data("funnel events")
        else:
            fig = go.Figure(
                go.Funnel(
                    y=stages["stage"],
                    x=stages["event_count"],
                    texttemplate="%{value:,}<br>%{percentInitial:.1%}",
                    marker={"color": [EVENT_COLOURS[s] for s in stages["stage"]]},
                )
            )
            fig.update_layout(title="Funnel: view → add to cart → purchase")
            _chart(fig)

    grain = st.radio("Time grain", GRAINS, horizontal=True, key="grain", format_func=str.capitalize)
    over_time = queries.events_over_time(con, f, grain)
    if over_time.empty:
        _no_data("events")
    else:
        fig = px.bar(
            over_time,
            x="period",
            y="event_count",
            color="event_type",
            color_discrete_map=colours,
            category_orders=order,
            title=f"Events per {grain}",
            labels={"period": "", "event_count": "events", "event_type": ""},
        )
        fig.update_layout(barmode="stack")
        _time_axis(fig, grain, over_time["period"].nunique())
        if over_time.groupby("period")["event_count"].sum().max() <= 10:
            fig.update_yaxes(dtick=1)  # whole events: no 0.2 ticks on small counts
        _chart(fig)
    return grain


def _sales_charts(con, f: Filters, grain: str) -> None:
    revenue = queries.revenue_over_time(con, f, grain)
    if revenue.empty:
        _no_data("sales")
    else:
        long = revenue.rename(
            columns={"gross_revenue": "Gross", "returns_value": "Returns", "net_revenue": "Net"}
        ).melt(id_vars="period", var_name="measure", value_name="amount")
        fig = px.line(
            long,
            x="period",
            y="amount",
            color="measure",
            markers=True,
            color_discrete_map=REVENUE_COLOURS,
            title=f"Revenue per {grain}",
            labels={"period": "", "amount": "revenue", "measure": ""},
        )
        _time_axis(fig, grain, len(revenue))
        _chart(fig)

    left, right = st.columns(2)
    with left:
        items = queries.top_items_by_revenue(con, f)
        if items.empty:
            _no_data("sales")
        else:
            _ranking(
                items, "net_revenue", "Top items by net revenue", REVENUE_COLOURS["Net"], ",.2f"
            )
    with right:
        items = queries.top_items_by_purchases(con, f)
        if items.empty:
            _no_data("purchases")
        else:
            _ranking(items, "purchases", "Top items by purchases", EVENT_COLOURS["PURCHASE"], ",d")


def _user_drill_down(con, f: Filters) -> None:
    st.subheader(f"Customer {f.user_id}")
    profile = queries.user_profile(con, f.user_id)
    if profile is None:
        st.warning(f"No activity for user_id {f.user_id!r} in this extract.")
        return
    cards = (
        ("Events (all time)", format_count(profile["events"])),
        ("Purchases (all time)", format_count(profile["purchases"])),
        ("Orders (all time)", format_count(profile["orders"])),
        ("Gross revenue (all time)", format_money(profile["gross_revenue"])),
        ("Returns (all time)", format_money(profile["returns_value"])),
    )
    for column, (label, value) in zip(st.columns(5), cards, strict=True):
        column.metric(label, value, border=True)
    if profile["events"]:
        st.caption(
            f"First event {profile['first_event_time']:%Y-%m-%d %H:%M}, last event "
            f"{profile['last_event_time']:%Y-%m-%d %H:%M} (UTC). The KPIs and charts show "
            "this customer in the filtered period."
        )
    timeline_tab, orders_tab = st.tabs(["Timeline", "Orders"])
    with timeline_tab:
        timeline = queries.user_timeline(con, f, limit=TIMELINE_LIMIT)
        if len(timeline) == TIMELINE_LIMIT:
            st.caption(f"The latest {TIMELINE_LIMIT} events in the filtered period.")
        st.dataframe(timeline, hide_index=True, height=260)
        st.download_button(
            "Download events as CSV",
            timeline.to_csv(index=False),
            file_name=f"finbi_user_{file_name_part(f.user_id)}_events.csv",
            mime="text/csv",
            on_click="ignore",
        )
    with orders_tab:
        st.dataframe(queries.user_orders(con, f), hide_index=True, height=260)


def file_name_part(value: str) -> str:
    """`value` made safe inside a download's file name: runs of anything but letters,
    digits, `.`, `-` and `_` (a user id may hold `/`, spaces, quotes) become one `_`."""
    return re.sub(r"[^\w.-]+", "_", value).strip("._")[:64] or "_"


def _filtered_table(connection: duckdb.DuckDBPyConnection, con, f: Filters) -> None:
    """The filtered data per day: shown on request, downloadable as CSV."""

    def csv() -> str:
        # Called only when the button is clicked, on a server thread after this run has
        # ended: hence a cursor of its own on the extract this page shows.
        with queries.reader(connection) as cursor:
            return queries.daily_csv(cursor, f)

    st.subheader("Filtered data")
    left, right = st.columns([3, 1])
    show = left.toggle("Show the table, one row per day", key="show_table")
    right.download_button(
        "Download CSV",
        csv,
        file_name=f"finbi_daily_{f.start}_{f.end}.csv",
        mime="text/csv",
        on_click="ignore",  # a download needs no rerun
        icon=":material/download:",
    )
    if show:  # not computed on every run: few viewers look at it
        st.dataframe(queries.daily_table(con, f), hide_index=True)


def _data_panel(con, info: dict, summary: dict) -> None:
    with st.container(border=True):
        st.subheader("Data freshness and quality")
        cards = (
            ("Last refresh (UTC)", f"{info['refreshed_at']:%Y-%m-%d %H:%M}"),
            ("Uploads processed", format_count(summary["uploads"])),
            ("Rows accepted", format_count(summary["rows_accepted"])),
            ("Rows duplicate", format_count(summary["rows_duplicate"])),
            ("Rows quarantined", format_count(summary["rows_quarantined"])),
        )
        for column, (label, value) in zip(st.columns([2, 1, 1, 1, 1]), cards, strict=True):
            column.metric(label, value)
        by_status = summary["uploads_by_status"] or {}
        st.caption(
            f"Rows read: {format_count(summary['rows_read'])} · uploads by status: "
            + (", ".join(f"{s} {n}" for s, n in sorted(by_status.items())) or "none")
        )
        reasons = queries.quarantine_reasons(con)
        st.markdown("**Quarantine reasons**")
        if reasons.empty:
            st.caption("Nothing quarantined.")
        else:
            st.dataframe(reasons, hide_index=True)
        with st.expander("Upload log"):
            st.dataframe(queries.ingest_log(con), hide_index=True)


def main() -> None:
    st.set_page_config(page_title="FinBI dashboard", page_icon="📊", layout="wide")
    st.title(TITLE)
    path = serving_path()  # FINBI_HOME is read now, on every run
    signature = queries.extract_signature(path)
    _watch_for_new_extract(str(path), signature)
    if signature is None:
        _empty_state(path, "The pipeline has not built a dashboard extract yet.")
        return

    try:
        dims = _dimensions(str(path), signature)
    except duckdb.Error:  # not an extract this version can read (e.g. before a version field)
        dims = None
    if dims is None or dims.extract_version != EXTRACT_VERSION:
        _empty_state(
            path,
            "It was written by another version of FinBI: `finbi run` rebuilds it.",
            headline="The dashboard extract needs a rebuild.",
        )
        return
    connection = _extract_connection(str(path), signature)
    with queries.reader(connection) as con:
        info = queries.extract_info(con)
        summary = queries.ingest_summary(con)
        if dims.is_empty:
            # Uploads that hold no accepted rows (every key retracted, everything
            # quarantined): the data panel says what became of them.
            _empty_state(
                path,
                "The extract holds no interactions and no sales"
                + (
                    ": the uploads processed hold no accepted rows."
                    if summary["uploads"]
                    else " yet."
                ),
            )
            if summary["uploads"]:
                _data_panel(con, info, summary)
            return
        f = _sidebar_filters(dims, _user_options(str(path), signature))
        st.caption(
            f"Data refreshed {info['refreshed_at']:%Y-%m-%d %H:%M:%S} UTC · "
            f"{format_count(info['events'])} events · "
            f"{format_count(info['sales_lines'])} sales lines · "
            f"showing {f.start} to {f.end} ({f.days} day{'' if f.days == 1 else 's'})"
            + (f" · customer {f.user_id}" if f.user_id else "")
        )

        current = queries.kpis(con, f)
        _kpi_cards(current, queries.kpis(con, f.previous_period()), f)
        if f.user_id:
            _user_drill_down(con, f)
        grain = _event_charts(con, f, current, dims.event_types)
        _sales_charts(con, f, grain)
        _filtered_table(connection, con, f)
        _data_panel(con, info, summary)


# Streamlit runs this file as __main__; importing it (tests, tools) must not draw a page.
if __name__ == "__main__":
    main()
