"""The QuickSight dashboard as code: its SPICE datasets and its `Definition`.

The publisher (`resources/quicksight.py`) creates or updates the datasets and the dashboard
from what is declared here, so the dashboard is reviewed and versioned like the SQL.

One sheet:
* KPI cards: views, purchases, conversion rate (from `interactions`, so they follow the
  filters) and net revenue (from `kpi_summary`, the checked headline figure);
* a pie of events by type and bars of events per day by type (from `interactions`);
* filters on `user_id` and `event_type` (drop-downs) over the `interactions` visuals.

`interactions` is loaded into SPICE at event grain because QuickSight filters act on a
dataset's rows: per-user filtering needs the rows that carry user_id.
"""

from __future__ import annotations

SHEET_ID = "finbi-overview"

# Dataset (Athena table in the Glue database) -> its columns as QuickSight input types.
DASHBOARD_DATASETS: dict[str, dict[str, str]] = {
    "interactions": {
        "user_id": "STRING",
        "item_id": "STRING",
        "event_type": "STRING",
        "event_time": "DATETIME",
        "event_date": "DATETIME",
        "source": "STRING",
        "upload_id": "STRING",
    },
    "kpi_summary": {
        "total_views": "INTEGER",
        "total_add_to_carts": "INTEGER",
        "total_purchases": "INTEGER",
        "conversion_rate": "DECIMAL",
        "total_users": "INTEGER",
        "orders": "INTEGER",
        "units": "INTEGER",
        "gross_revenue": "DECIMAL",
        "returns_value": "DECIMAL",
        "net_revenue": "DECIMAL",
        "average_order_value": "DECIMAL",
        "refreshed_at": "DATETIME",
    },
}

# A DECIMAL column's SPICE sub type: money is FIXED (exact, 4 decimal places, as stored);
# a ratio FLOAT, which FIXED would round to 4 places.
FLOAT_DECIMALS = frozenset({"conversion_rate"})

_EVENTS = "interactions"
_KPIS = "kpi_summary"


def _column(dataset: str, name: str) -> dict:
    return {"DataSetIdentifier": dataset, "ColumnName": name}


def _title(text: str) -> dict:
    return {"Visibility": "VISIBLE", "FormatText": {"PlainText": text}}


def _sum(field_id: str, dataset: str, column: str) -> dict:
    return {
        "NumericalMeasureField": {
            "FieldId": field_id,
            "Column": _column(dataset, column),
            "AggregationFunction": {"SimpleNumericalAggregation": "SUM"},
        }
    }


def _kpi(visual_id: str, title: str, measure: dict) -> dict:
    return {
        "KPIVisual": {
            "VisualId": visual_id,
            "Title": _title(title),
            "ChartConfiguration": {"FieldWells": {"Values": [measure]}},
        }
    }


def _event_count(field_id: str) -> dict:
    return {
        "CategoricalMeasureField": {
            "FieldId": field_id,
            "Column": _column(_EVENTS, "event_type"),
            "AggregationFunction": "COUNT",
        }
    }


def _event_type_dimension(field_id: str) -> dict:
    return {
        "CategoricalDimensionField": {
            "FieldId": field_id,
            "Column": _column(_EVENTS, "event_type"),
        }
    }


def _dropdown_filter(filter_id: str, column: str) -> tuple[dict, dict]:
    """A filter over every visual of the sheet that uses `interactions`, and its control."""
    group = {
        "FilterGroupId": f"{filter_id}-group",
        "CrossDataset": "SINGLE_DATASET",
        "Status": "ENABLED",
        "ScopeConfiguration": {
            "SelectedSheets": {
                "SheetVisualScopingConfigurations": [{"SheetId": SHEET_ID, "Scope": "ALL_VISUALS"}]
            }
        },
        "Filters": [
            {
                "CategoryFilter": {
                    "FilterId": filter_id,
                    "Column": _column(_EVENTS, column),
                    "Configuration": {
                        "FilterListConfiguration": {
                            "MatchOperator": "CONTAINS",
                            "SelectAllOptions": "FILTER_ALL_VALUES",
                        }
                    },
                }
            }
        ],
    }
    control = {
        "Dropdown": {
            "FilterControlId": f"{filter_id}-control",
            "Title": column,
            "SourceFilterId": filter_id,
            "Type": "MULTI_SELECT",
        }
    }
    return group, control


def dashboard_definition(dataset_arns: dict[str, str]) -> dict:
    """The dashboard's `Definition` for create_dashboard/update_dashboard."""
    user_group, user_control = _dropdown_filter("user-id-filter", "user_id")
    type_group, type_control = _dropdown_filter("event-type-filter", "event_type")
    visuals = [
        _kpi("kpi-views", "Views", _sum("views", _EVENTS, "is_view")),
        _kpi("kpi-purchases", "Purchases", _sum("purchases", _EVENTS, "is_purchase")),
        _kpi(
            "kpi-conversion",
            "Conversion rate (purchases / views)",
            # An aggregated calculated field: already a ratio of sums, no aggregation here.
            {
                "NumericalMeasureField": {
                    "FieldId": "conversion",
                    "Column": _column(_EVENTS, "conversion_rate"),
                }
            },
        ),
        _kpi("kpi-revenue", "Net revenue", _sum("revenue", _KPIS, "net_revenue")),
        {
            "PieChartVisual": {
                "VisualId": "events-by-type",
                "Title": _title("Events by type"),
                "ChartConfiguration": {
                    "FieldWells": {
                        "PieChartAggregatedFieldWells": {
                            "Category": [_event_type_dimension("pie-type")],
                            "Values": [_event_count("pie-count")],
                        }
                    }
                },
            }
        },
        {
            "BarChartVisual": {
                "VisualId": "events-over-time",
                "Title": _title("Events per day by type"),
                "ChartConfiguration": {
                    "Orientation": "VERTICAL",
                    "BarsArrangement": "STACKED",
                    "FieldWells": {
                        "BarChartAggregatedFieldWells": {
                            "Category": [
                                {
                                    "DateDimensionField": {
                                        "FieldId": "bar-day",
                                        "Column": _column(_EVENTS, "event_date"),
                                        "DateGranularity": "DAY",
                                    }
                                }
                            ],
                            "Values": [_event_count("bar-count")],
                            "Colors": [_event_type_dimension("bar-type")],
                        }
                    },
                },
            }
        },
    ]
    return {
        "DataSetIdentifierDeclarations": [
            {"Identifier": name, "DataSetArn": arn} for name, arn in sorted(dataset_arns.items())
        ],
        "CalculatedFields": [
            {
                "DataSetIdentifier": _EVENTS,
                "Name": "is_view",
                "Expression": "ifelse({event_type} = 'VIEW', 1, 0)",
            },
            {
                "DataSetIdentifier": _EVENTS,
                "Name": "is_purchase",
                "Expression": "ifelse({event_type} = 'PURCHASE', 1, 0)",
            },
            {
                # DESIGN.md: purchases / views, NULL (blank) without views.
                "DataSetIdentifier": _EVENTS,
                "Name": "conversion_rate",
                "Expression": (
                    "ifelse(sum({is_view}) = 0, NULL, sum({is_purchase}) / sum({is_view}))"
                ),
            },
        ],
        "FilterGroups": [user_group, type_group],
        "Sheets": [
            {
                "SheetId": SHEET_ID,
                "Name": "Overview",
                "Visuals": visuals,
                "FilterControls": [user_control, type_control],
            }
        ],
    }
