//! The two CSV files inside a day's queue-call zip: `…-queue_call.csv` (one row per
//! call that entered a queue) and `…-queue_user_call.csv` (each point it was offered
//! to). The provider documents one set of columns and says each file carries the
//! subset that applies, so both tables accept every documented column and write the
//! ones a file lacks as NULL; only `id` and `start_time` are required.

use std::sync::OnceLock;

use super::table::{Column, Kind, Table, col};

/// `final_dst_type`: where the call ended.
const FINAL_DESTINATION: &[(&str, &str)] = &[
    ("V", "voicemail"),
    ("U", "user"),
    ("Q", "queue"),
    ("R", "ivr"),
];
/// `t_cause`: how it ended.
const TERMINATION: &[(&str, &str)] = &[("C", "connected"), ("H", "hung_up")];

/// Every documented queue-report column, in the order we write them.
const COLUMNS: &[Column] = &[
    col("id", Kind::Text, true),
    col("call_id", Kind::Text, false),
    col("queue_id", Kind::Text, false),
    col("user_id", Kind::Text, false),
    col("location_id", Kind::Text, false),
    col("ddi", Kind::Text, false),
    col("cli", Kind::Text, false),
    col("callers", Kind::Whole, false),
    col("agents", Kind::Whole, false),
    col("start_time", Kind::Timestamp, true),
    col("hold_time", Kind::Whole, false),
    col("ring_time", Kind::Whole, false),
    col("conn_time", Kind::Whole, false),
    col("final_dst_type", Kind::Code(FINAL_DESTINATION), false),
    col("final_dst_id", Kind::Text, false),
    // The ring order; kept as text because the provider does not say it is always a number.
    col("disposition", Kind::Text, false),
    col("t_cause", Kind::Code(TERMINATION), false),
];

/// One row per call that entered a queue.
pub static QUEUE_CALL: Table = Table {
    dataset: "queue_call",
    columns: COLUMNS,
    id_column: 0,
    date_column: 9,
    schema: OnceLock::new(),
};

/// One row per agent, voicemail, queue or IVR a queue call was offered to.
pub static QUEUE_USER_CALL: Table = Table {
    dataset: "queue_user_call",
    columns: COLUMNS,
    id_column: 0,
    date_column: 9,
    schema: OnceLock::new(),
};

/// Which table a zip entry holds, by the end of its file name.
pub fn table_for_entry(file_name: &str) -> Option<&'static Table> {
    let name = file_name
        .rsplit('/')
        .next()
        .unwrap_or(file_name)
        .to_ascii_lowercase();
    if name.ends_with("queue_user_call.csv") {
        Some(&QUEUE_USER_CALL)
    } else if name.ends_with("queue_call.csv") {
        Some(&QUEUE_CALL)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::table::{Value, read};

    #[test]
    fn codes_get_readable_names_and_a_subset_of_columns_is_enough() {
        let text = "id,call_id,start_time,final_dst_type,t_cause,hold_time\n5,1709251200.2,2024-03-01 00:00:00,U,H,12\n6,1709251200.3,2024-03-01 00:00:01,X,C,\n";
        let mut rows = Vec::new();
        read::<_, ()>(
            &QUEUE_CALL,
            text.as_bytes(),
            |_| Ok(()),
            |row, _| {
                let row = row.unwrap();
                rows.push([13, 16, 10, 3].map(|i| format!("{:?}", row.values[i])));
                Ok(())
            },
        )
        .unwrap()
        .unwrap();
        let expected = [
            Value::Code("U", Some("user")),
            Value::Code("H", Some("hung_up")),
            Value::Whole(12),
            Value::Null,
        ];
        assert_eq!(rows[0], expected.map(|v| format!("{v:?}")));
        // An undocumented letter is kept as sent, without a readable name.
        assert_eq!(rows[1][0], format!("{:?}", Value::Code("X", None)));
    }

    #[test]
    fn entries_are_told_apart_by_name() {
        assert_eq!(
            table_for_entry("2024-03-01-queue_call.csv").map(|t| t.dataset),
            Some("queue_call")
        );
        assert_eq!(
            table_for_entry("x/2024-03-01-queue_user_call.csv").map(|t| t.dataset),
            Some("queue_user_call")
        );
        assert!(table_for_entry("readme.txt").is_none());
    }
}
