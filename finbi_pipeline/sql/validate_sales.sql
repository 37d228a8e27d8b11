-- Types and validates one upload's sales lines: one output row per input record.
-- reject_reason is NULL for an accepted line, else "<column>: <cause>" for the first rule
-- it breaks. quantity must be a non-zero integer (negative: a return or cancellation);
-- unit_price a decimal >= 0 with at most 4 decimal places (stored as DECIMAL(18, 4), never
-- rounded); user_id may be empty (guest checkout).
WITH cleaned AS (
    SELECT
        record_no,
        file_index,
        {{order_id}} AS order_id,
        {{user_id}} AS user_id,
        {{item_id}} AS item_id,
        NULLIF(TRIM(quantity), '') AS quantity_raw,
        NULLIF(TRIM(unit_price), '') AS unit_price_raw,
        NULLIF(TRIM("timestamp"), '') AS timestamp_raw,
        {{country}} AS country
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
        CASE
            WHEN regexp_like(quantity_raw, '^[+-]?[0-9]{1,18}$') THEN CAST(quantity_raw AS BIGINT)
        END AS quantity,
        TRY_CAST(unit_price_raw AS DECIMAL(18, 4)) AS unit_price,
        TRY_CAST(unit_price_raw AS DOUBLE) AS unit_price_number,
        -- Whether the stored DECIMAL(18, 4) would round the price as written: a non-zero
        -- digit past the 4th decimal place. Exponent notation is compared exactly; parsing a
        -- 38-digit decimal costs 50 times as much, so plain notation is read as text.
        CASE
            WHEN strpos(unit_price_raw, 'e') > 0 OR strpos(unit_price_raw, 'E') > 0
                THEN TRY_CAST(unit_price_raw AS DECIMAL(18, 4))
                    <> TRY_CAST(unit_price_raw AS DECIMAL(38, 18))
            ELSE regexp_like(unit_price_raw, '\.[0-9]{4}[0-9]*[1-9]')
        END AS unit_price_rounded,
        {{timestamp_value}} AS ts_value
    FROM zoned
),
priced AS (
    -- NULL when the line's amount does not fit DECIMAL(18, 4): quarantined, never an error.
    SELECT typed.*, TRY_CAST(quantity * unit_price AS DECIMAL(18, 4)) AS amount
    FROM typed
),
checked AS (
    SELECT
        priced.*,
        CASE
            WHEN order_id IS NULL THEN 'order_id: missing value'
            WHEN item_id IS NULL THEN 'item_id: missing value'
            WHEN quantity_raw IS NULL THEN 'quantity: missing value'
            WHEN quantity IS NULL AND regexp_like(quantity_raw, '^[+-]?[0-9]+$')
                THEN 'quantity: ''' || quantity_raw || ''' has more than 18 digits'
            WHEN quantity IS NULL THEN 'quantity: ''' || quantity_raw || ''' is not an integer'
            WHEN quantity = 0 THEN 'quantity: zero quantity'
            WHEN unit_price_raw IS NULL THEN 'unit_price: missing value'
            -- A number as both engines write one (DuckDB alone also reads '1_000', Athena
            -- alone '1.5d'), and finite.
            WHEN NOT regexp_like(unit_price_raw, '^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$')
                OR unit_price_number IS NULL
                OR NOT (unit_price_number - unit_price_number = 0)
                THEN 'unit_price: ''' || unit_price_raw || ''' is not a number'
            WHEN unit_price_number < 0 THEN 'unit_price: negative price ' || unit_price_raw
            WHEN unit_price_rounded
                THEN 'unit_price: ''' || unit_price_raw || ''' has more than 4 decimal places'
            WHEN unit_price IS NULL
                THEN 'unit_price: ''' || unit_price_raw || ''' is too large (at most 14 digits before the decimal point)'
            WHEN amount IS NULL THEN 'quantity: quantity x unit_price is too large an amount'
            WHEN timestamp_raw IS NULL THEN 'timestamp: missing value'
            WHEN ts_value IS NULL OR NOT ({{ts_finite}})
                THEN 'timestamp: cannot parse ''' || timestamp_raw || ''' as {{timestamp_format_text}}'
            WHEN ts_value < {{ts_low}} OR ts_value >= {{ts_high}}
                THEN 'timestamp: ''' || timestamp_raw || ''' is outside the plausible window {{window_text}}{{millis_hint}}'
        END AS reject_reason
    FROM priced
),
timed AS (
    -- The time of accepted records only: a rejected one may not convert.
    SELECT checked.*, CASE WHEN reject_reason IS NULL THEN {{event_time}} END AS sale_time
    FROM checked
)
SELECT
    record_no,
    file_index,
    order_id,
    user_id,
    item_id,
    quantity,
    unit_price,
    amount,
    sale_time,
    CAST(sale_time AS DATE) AS sale_date,
    country,
    split_part(reject_reason, ':', 1) AS reject_column,
    reject_reason,
    -- The record's mapped fields as a line of the file's dialect: empty fields keep their
    -- place, and a field holding the delimiter, the quote or a line break is quoted.
    CASE
        WHEN reject_reason IS NOT NULL
            THEN array_join(
                transform(
                    ARRAY[
                        COALESCE(order_id, ''),
                        COALESCE(user_id, ''),
                        COALESCE(item_id, ''),
                        COALESCE(quantity_raw, ''),
                        COALESCE(unit_price_raw, ''),
                        COALESCE(timestamp_raw, ''),
                        COALESCE(country, '')
                    ],
                    {{quote_field}}
                ),
                '{{delimiter}}'
            )
    END AS raw_values
FROM timed
