//! The provider's daily CDR file (`CDRs/YYYY-MM-DD.csv`), one row per call.

use std::sync::OnceLock;

use super::table::{Kind, Table, col};

/// The CDR columns as the provider documents them, in the order we write them.
pub static CDR: Table = Table {
    dataset: "cdr",
    columns: &[
        col("id", Kind::Text, true),
        col("calldate", Kind::Timestamp, true),
        col("src_id", Kind::Text, false),
        col("src", Kind::Text, true),
        col("clid", Kind::Text, false),
        col("dst", Kind::Text, true),
        col("dst_name", Kind::Text, false),
        col("duration", Kind::Whole, true),
        col("billsec", Kind::Whole, true),
        col("disposition", Kind::Text, true),
        col("destination", Kind::Text, false),
        col("rate", Kind::Decimal, false),
        col("charge", Kind::Decimal, false),
        col("t_cause", Kind::Text, false),
    ],
    id_column: 0,
    date_column: 1,
    schema: OnceLock::new(),
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::table::{FileError, Rejected, Value, read};

    type Rows = (Vec<(Vec<String>, u64, u64)>, Vec<Rejected>);

    fn parse(text: &str) -> Result<Rows, FileError> {
        let mut ok = Vec::new();
        let mut rejected = Vec::new();
        read::<_, ()>(
            &CDR,
            text.as_bytes(),
            |_| Ok(()),
            |row, _| {
                match row {
                    Ok(r) => ok.push((
                        r.values.iter().map(|v| format!("{v:?}")).collect(),
                        r.line,
                        r.fingerprint,
                    )),
                    Err(r) => rejected.push(r),
                }
                Ok(())
            },
        )?
        .unwrap();
        Ok((ok, rejected))
    }

    const HEADER: &str = "id,calldate,src_id,src,clid,dst,dst_name,duration,billsec,disposition,destination,rate,charge,t_cause";

    #[test]
    fn bom_crlf_quotes_and_non_ascii() {
        let text = format!(
            "\u{feff}{HEADER}\r\n1.1,2024-03-01 10:00:00,,+4822,\"\"\"Zoë Ł\"\" <+4822>\",0221,\"Support, 2nd line\",10,5,ANSWERED,,0.0120,,Normal\r\n"
        );
        let (ok, rejected) = parse(&text).unwrap();
        assert!(rejected.is_empty(), "{rejected:?}");
        let values = &ok[0].0;
        assert_eq!(values[0], format!("{:?}", Value::Text("1.1")));
        assert_eq!(values[3], format!("{:?}", Value::Text("+4822")));
        assert_eq!(values[4], format!("{:?}", Value::Text("\"Zoë Ł\" <+4822>")));
        assert_eq!(values[5], format!("{:?}", Value::Text("0221")));
        assert_eq!(values[6], format!("{:?}", Value::Text("Support, 2nd line")));
        assert_eq!(values[11], format!("{:?}", Value::Decimal(12_000)));
        assert_eq!(values[12], format!("{:?}", Value::Null));
        assert_eq!(ok[0].1, 2);
    }

    #[test]
    fn any_column_order_and_unknown_columns() {
        let text = "billsec,x_custom,dst,duration,calldate,disposition,src,id\n5,zz,100,10,2024-03-01 10:00:00,ANSWERED,0221,7\n";
        let mut unknown = Vec::new();
        let mut ids = Vec::new();
        read::<_, ()>(
            &CDR,
            text.as_bytes(),
            |h| {
                unknown = h.unknown.clone();
                Ok(())
            },
            |row, _| {
                ids.push(row.unwrap().id.to_string());
                Ok(())
            },
        )
        .unwrap()
        .unwrap();
        assert_eq!(unknown, ["x_custom"]);
        assert_eq!(ids, ["7"]);
    }

    #[test]
    fn missing_required_column_fails_the_file() {
        let err = parse("id,calldate,src\n1,2024-03-01 10:00:00,1\n").unwrap_err();
        assert!(
            err.to_string()
                .contains("dst, duration, billsec, disposition"),
            "{err}"
        );
    }

    #[test]
    fn bad_rows_are_rejected_with_line_and_reason() {
        let text = format!(
            "{HEADER}\n1,2024-03-01 10:00:00,,1,,2,,10,5,ANSWERED,,,,\n2,2024-03-01\n3,2024-13-45 25:61:00,,1,,2,,10,5,ANSWERED,,,,\n4,2024-03-01 10:00:00,,1,,2,,12s,5,ANSWERED,,,,\n5,2024-03-01 10:00:00,,1,,2,,10,5,ANSWERED,,0.1,x,\n,2024-03-01 10:00:00,,1,,2,,10,5,ANSWERED,,,,\n"
        );
        let (ok, rejected) = parse(&text).unwrap();
        assert_eq!(ok.len(), 1);
        let summary: Vec<(u64, &str)> = rejected
            .iter()
            .map(|r| (r.line, r.reason.as_str()))
            .collect();
        assert_eq!(summary[0], (3, "has 2 fields, the header has 14"));
        assert_eq!(summary[1].0, 4);
        assert!(summary[1].1.starts_with("calldate: "), "{}", summary[1].1);
        assert!(
            summary[2].1.starts_with("duration: \"12s\""),
            "{}",
            summary[2].1
        );
        assert!(
            summary[3].1.starts_with("charge: \"x\""),
            "{}",
            summary[3].1
        );
        assert_eq!(summary[4], (7, "id is empty"));
        assert_eq!(rejected[0].raw, "2,2024-03-01");
    }

    #[test]
    fn empty_required_values_other_than_the_keys_are_null() {
        let (ok, rejected) =
            parse(&format!("{HEADER}\n1,2024-03-01 10:00:00,,,,,,,,,,,,\n")).unwrap();
        assert!(rejected.is_empty(), "{rejected:?}");
        assert_eq!(
            ok[0].0[3],
            format!("{:?}", Value::Null),
            "an empty src is NULL"
        );
        assert_eq!(
            ok[0].0[8],
            format!("{:?}", Value::Null),
            "an empty billsec is NULL"
        );
    }

    #[test]
    fn identical_rows_share_a_fingerprint() {
        let row = "1,2024-03-01 10:00:00,,1,,2,,10,5,ANSWERED,,,,";
        let (ok, _) = parse(&format!(
            "{HEADER}\n{row}\n{row}\n1,2024-03-01 10:00:00,,1,,2,,10,6,ANSWERED,,,,\n"
        ))
        .unwrap();
        assert_eq!(ok[0].2, ok[1].2);
        assert_ne!(ok[0].2, ok[2].2);
    }
}
