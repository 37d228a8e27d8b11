-- Types and validates one upload's interaction records: one output row per input record.
-- reject_reason is NULL for an accepted row, else "<column>: <cause>" for the first rule
-- the record breaks. Placeholders ({{...}}) are SQL fragments built from the source's
-- declaration by finbi_pipeline/sql_templates.py.
WITH cleaned AS (
    SELECT
        record_no,
        file_index,
        {{user_id}} AS user_id,
        {{item_id}} AS item_id,
        NULLIF(TRIM(event_type), '') AS event_type_raw,
        NULLIF(TRIM("timestamp"), '') AS timestamp_raw
    FROM {{raw_records}}
),
zoned AS (
    -- ISO 8601 sources: a timestamp's date and time without its UTC offset, NULL when the
    -- value is no ISO 8601 timestamp. NULL for every other format.
    SELECT cleaned.*, {{timestamp_local}} AS timestamp_local
    FROM cleaned
),
typed AS (
    SELECT
        zoned.*,
        {{event_type}} AS event_type,
        {{timestamp_value}} AS ts_value
    FROM zoned
),
checked AS (
    SELECT
        typed.*,
        CASE
            WHEN user_id IS NULL THEN 'user_id: missing value'
            WHEN item_id IS NULL THEN 'item_id: missing value'
            WHEN event_type_raw IS NULL THEN 'event_type: missing value'
            WHEN NOT ({{event_type_allowed}})
                THEN 'event_type: ''' || event_type_raw || ''' is not an event type this source declares ({{event_types_text}})'
            WHEN timestamp_raw IS NULL THEN 'timestamp: missing value'
            WHEN ts_value IS NULL OR NOT ({{ts_finite}})
                THEN 'timestamp: cannot parse ''' || timestamp_raw || ''' as {{timestamp_format_text}}'
            WHEN ts_value < {{ts_low}} OR ts_value >= {{ts_high}}
                THEN 'timestamp: ''' || timestamp_raw || ''' is outside the plausible window {{window_text}}{{millis_hint}}'
        END AS reject_reason
    FROM typed
),
timed AS (
    -- The time of accepted records only: a rejected one may not convert.
    SELECT checked.*, CASE WHEN reject_reason IS NULL THEN {{event_time}} END AS event_time
    FROM checked
)
SELECT
    record_no,
    file_index,
    user_id,
    item_id,
    event_type,
    event_time,
    CAST(event_time AS DATE) AS event_date,
    split_part(reject_reason, ':', 1) AS reject_column,
    reject_reason,
    -- The record's mapped fields as a line of the file's dialect: empty fields keep their
    -- place, and a field holding the delimiter, the quote or a line break is quoted.
    CASE
        WHEN reject_reason IS NOT NULL
            THEN array_join(
                transform(
                    ARRAY[
                        COALESCE(user_id, ''),
                        COALESCE(item_id, ''),
                        COALESCE(event_type_raw, ''),
                        COALESCE(timestamp_raw, '')
                    ],
                    {{quote_field}}
                ),
                '{{delimiter}}'
            )
    END AS raw_values
FROM timed
