//! A call record pushed over HTTP (PROVIDER.md §2): one record per request body, as
//! JSON, XML-RPC (a `methodCall` whose one param is a struct) or
//! `application/x-www-form-urlencoded` (where the `IVR` list arrives as a JSON string),
//! typed into a [`PushRecord`]; and the reply in the request's own format.
//!
//! Pure: bytes in, a record or the reason it cannot be one out. Field names are matched
//! as documented, ignoring case; a field the provider does not document is kept in
//! `extra` (as JSON) so nothing sent is lost.

use std::collections::BTreeMap;

use quick_xml::events::Event;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The three body formats, and the reply each expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Format {
    Json,
    XmlRpc,
    Form,
}

impl Format {
    /// The format of a body, from its `Content-Type` (parameters ignored), else from its
    /// first character: `{` JSON, `<` XML-RPC, anything else a form.
    pub fn of(content_type: Option<&str>, body: &[u8]) -> Format {
        let media = content_type
            .and_then(|c| c.split(';').next())
            .map(|c| c.trim().to_ascii_lowercase());
        match media.as_deref() {
            Some(m) if m.ends_with("json") => return Format::Json,
            Some(m) if m.ends_with("xml") => return Format::XmlRpc,
            Some("application/x-www-form-urlencoded") => return Format::Form,
            _ => {}
        }
        match body.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') => Format::Json,
            Some(b'<') => Format::XmlRpc,
            _ => Format::Form,
        }
    }

    /// The label in metrics and logs.
    pub fn name(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::XmlRpc => "xmlrpc",
            Format::Form => "form",
        }
    }

    /// The reply's `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::XmlRpc => "text/xml; charset=utf-8",
            Format::Form => "application/x-www-form-urlencoded",
        }
    }

    /// The reply body: `err` 0 (OK), 1 (parse error) or 2 (application error).
    pub fn reply(self, err: u8, errdesc: &str) -> String {
        match self {
            Format::Json => serde_json::json!({"err": err, "errdesc": errdesc}).to_string(),
            Format::Form => url::form_urlencoded::Serializer::new(String::new())
                .append_pair("err", &err.to_string())
                .append_pair("errdesc", errdesc)
                .finish(),
            Format::XmlRpc => format!(
                "<?xml version=\"1.0\"?>\n<methodResponse><params><param><value><struct>\
                 <member><name>err</name><value><int>{err}</int></value></member>\
                 <member><name>errdesc</name><value><string>{}</string></value></member>\
                 </struct></value></param></params></methodResponse>\n",
                xml_escape(errdesc)
            ),
        }
    }
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// One IVR layer the call passed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IvrLayer {
    pub layer_id: Option<String>,
    pub layer_name: Option<String>,
    pub layer_number: Option<String>,
    /// The key pressed; `0`: none.
    pub dtmf: Option<String>,
    pub dtmf_order: Option<i64>,
}

/// A typed pushed record: every documented field (absent or empty: `None`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushRecord {
    pub ivruniqueid: String,
    /// The record's kind (`Incoming Call`, `Click2Call leg1`, …): with `ivruniqueid`, the
    /// record's key, since the legs of a two-leg call share the id.
    pub r#type: String,
    /// The call's time, epoch seconds.
    pub time: i64,
    pub caller: Option<String>,
    pub target: Option<String>,
    /// Talk seconds, without ringing.
    pub duration: Option<i64>,
    pub status: Option<String>,
    pub leg1_dial_status_name: Option<String>,
    pub targetextension: Option<String>,
    pub callerextension: Option<String>,
    pub did: Option<String>,
    /// `0`: no queue.
    pub queueid: Option<String>,
    pub queuename: Option<String>,
    /// The recording's URL.
    pub record: Option<String>,
    /// In agorot (1/100 shekel).
    pub price_agorot: Option<i64>,
    /// Ringing seconds.
    pub dialtime: Option<i64>,
    pub representative_name: Option<String>,
    pub representative_code: Option<String>,
    pub targetextension_name: Option<String>,
    pub callerextension_name: Option<String>,
    pub target_country: Option<String>,
    pub caller_country: Option<String>,
    pub seconds_waiting_in_queue: Option<i64>,
    pub original_ivr_unique_id: Option<String>,
    pub department_name: Option<String>,
    pub department_id: Option<String>,
    pub top_department_name: Option<String>,
    pub top_department_id: Option<String>,
    pub ivr: Vec<IvrLayer>,
    /// Fields the provider does not document, as a JSON object's text; `None` if none.
    pub extra: Option<String>,
}

impl PushRecord {
    /// The record's key, `ivruniqueid` and `type`: a resent record has the same.
    pub fn key(&self) -> (&str, &str) {
        (&self.ivruniqueid, &self.r#type)
    }
}

/// Parses a body of `format` into a record, or says why it cannot be one (the reason
/// names the field).
pub fn parse(format: Format, body: &[u8]) -> Result<PushRecord, String> {
    let fields = match format {
        Format::Json => json_fields(body)?,
        Format::Form => form_fields(body)?,
        Format::XmlRpc => xmlrpc_fields(body)?,
    };
    typed(fields)
}

fn json_fields(body: &[u8]) -> Result<Map<String, Value>, String> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err("the body is JSON but not an object".into()),
        Err(e) => Err(format!("the body is not JSON: {e}")),
    }
}

fn form_fields(body: &[u8]) -> Result<Map<String, Value>, String> {
    std::str::from_utf8(body).map_err(|_| "the form body is not UTF-8".to_string())?;
    let mut map = Map::new();
    for (name, value) in url::form_urlencoded::parse(body) {
        if map.contains_key(name.as_ref()) {
            return Err(format!("field {name:?} appears twice"));
        }
        map.insert(name.into_owned(), Value::String(value.into_owned()));
    }
    if map.is_empty() {
        return Err("the form body has no fields".into());
    }
    Ok(map)
}

/// The struct of an XML-RPC `methodCall`'s first param.
fn xmlrpc_fields(body: &[u8]) -> Result<Map<String, Value>, String> {
    let mut reader = quick_xml::Reader::from_reader(body);
    reader.config_mut().trim_text(false);
    let mut path: Vec<String> = Vec::new();
    loop {
        match reader.read_event().map_err(xml_error)? {
            Event::Start(start) => {
                let name = tag(&start)?;
                path.push(name);
                let at: Vec<&str> = path.iter().map(String::as_str).collect();
                match at.as_slice() {
                    ["methodCall"] | ["methodCall", "methodName" | "params"] => {}
                    ["methodCall", "params", "param"] => {}
                    ["methodCall", "params", "param", "value"] => {
                        return match value(&mut reader)? {
                            Value::Object(map) => Ok(map),
                            _ => Err("the XML-RPC param is not a struct".into()),
                        };
                    }
                    [first, ..] if *first != "methodCall" => {
                        return Err(format!(
                            "the XML body is <{first}>, not an XML-RPC <methodCall>"
                        ));
                    }
                    _ => {}
                }
            }
            Event::End(_) => {
                path.pop();
            }
            Event::Eof => return Err("the XML-RPC methodCall has no param".into()),
            _ => {}
        }
    }
}

fn xml_error(e: quick_xml::Error) -> String {
    format!("the body is not well-formed XML: {e}")
}

fn tag(start: &quick_xml::events::BytesStart<'_>) -> Result<String, String> {
    String::from_utf8(start.local_name().as_ref().to_vec())
        .map_err(|_| "an XML tag is not UTF-8".to_string())
}

/// Reads one XML-RPC value, its `<value>` start already read, through its `</value>`.
fn value(reader: &mut quick_xml::Reader<&[u8]>) -> Result<Value, String> {
    let mut text = String::new();
    let mut typed: Option<Value> = None;
    loop {
        match reader.read_event().map_err(xml_error)? {
            Event::Text(t) => text.push_str(&t.decode().map_err(|e| xml_error(e.into()))?),
            Event::GeneralRef(r) => {
                let name = r.decode().map_err(|e| xml_error(e.into()))?;
                text.push_str(&entity(&name)?);
            }
            Event::CData(c) => {
                text.push_str(std::str::from_utf8(&c).map_err(|_| "CDATA is not UTF-8")?)
            }
            Event::Start(start) => {
                let name = tag(&start)?;
                typed = Some(match name.as_str() {
                    "struct" => Value::Object(members(reader)?),
                    "array" => Value::Array(array(reader)?),
                    "nil" => {
                        end_of(reader, "nil")?;
                        Value::Null
                    }
                    scalar => Value::String(scalar_text(reader, scalar)?),
                });
            }
            Event::Empty(empty) => {
                let name = tag(&empty)?;
                typed = Some(match name.as_str() {
                    "nil" => Value::Null,
                    "struct" => Value::Object(Map::new()),
                    "array" => Value::Array(Vec::new()),
                    _ => Value::String(String::new()),
                });
            }
            Event::End(_) => {
                // A `<value>` without a type tag is a string.
                return Ok(typed.unwrap_or(Value::String(text)));
            }
            Event::Eof => return Err("the XML-RPC body ends inside a <value>".into()),
            _ => {}
        }
    }
}

fn entity(name: &str) -> Result<String, String> {
    if let Some(code) = name.strip_prefix('#') {
        let number = match code.strip_prefix('x') {
            Some(hex) => u32::from_str_radix(hex, 16),
            None => code.parse(),
        };
        return number
            .ok()
            .and_then(char::from_u32)
            .map(String::from)
            .ok_or_else(|| format!("&{name}; is not a character"));
    }
    Ok(match name {
        "amp" => "&",
        "lt" => "<",
        "gt" => ">",
        "quot" => "\"",
        "apos" => "'",
        _ => return Err(format!("unknown XML entity &{name};")),
    }
    .to_string())
}

/// The text of a scalar's `<int>`, `<string>`, … through its end tag.
fn scalar_text(reader: &mut quick_xml::Reader<&[u8]>, name: &str) -> Result<String, String> {
    let mut text = String::new();
    loop {
        match reader.read_event().map_err(xml_error)? {
            Event::Text(t) => text.push_str(&t.decode().map_err(|e| xml_error(e.into()))?),
            Event::GeneralRef(r) => {
                let entity_name = r.decode().map_err(|e| xml_error(e.into()))?;
                text.push_str(&entity(&entity_name)?);
            }
            Event::CData(c) => {
                text.push_str(std::str::from_utf8(&c).map_err(|_| "CDATA is not UTF-8")?)
            }
            Event::End(_) => return Ok(text),
            Event::Start(_) => return Err(format!("<{name}> holds markup, not a value")),
            Event::Eof => return Err(format!("the XML-RPC body ends inside <{name}>")),
            _ => {}
        }
    }
}

fn end_of(reader: &mut quick_xml::Reader<&[u8]>, name: &str) -> Result<(), String> {
    scalar_text(reader, name).map(|_| ())
}

/// A struct's members through `</struct>`.
fn members(reader: &mut quick_xml::Reader<&[u8]>) -> Result<Map<String, Value>, String> {
    let mut map = Map::new();
    let mut name: Option<String> = None;
    loop {
        match reader.read_event().map_err(xml_error)? {
            Event::Start(start) => match tag(&start)?.as_str() {
                "member" => name = None,
                "name" => name = Some(scalar_text(reader, "name")?.trim().to_string()),
                "value" => {
                    let member = name
                        .take()
                        .ok_or("an XML-RPC struct member has a <value> before its <name>")?;
                    let v = value(reader)?;
                    if map.insert(member.clone(), v).is_some() {
                        return Err(format!("member {member:?} appears twice"));
                    }
                }
                other => return Err(format!("unexpected <{other}> in an XML-RPC struct")),
            },
            Event::End(end) if end.local_name().as_ref() == b"struct" => return Ok(map),
            Event::Eof => return Err("the XML-RPC body ends inside a <struct>".into()),
            _ => {}
        }
    }
}

/// An array's values through `</array>`.
fn array(reader: &mut quick_xml::Reader<&[u8]>) -> Result<Vec<Value>, String> {
    let mut values = Vec::new();
    loop {
        match reader.read_event().map_err(xml_error)? {
            Event::Start(start) => match tag(&start)?.as_str() {
                "data" => {}
                "value" => values.push(value(reader)?),
                other => return Err(format!("unexpected <{other}> in an XML-RPC array")),
            },
            Event::End(end) if end.local_name().as_ref() == b"array" => return Ok(values),
            Event::Eof => return Err("the XML-RPC body ends inside an <array>".into()),
            _ => {}
        }
    }
}

/// The documented fields, in the order [`PushRecord`] has them.
pub const FIELDS: [&str; 29] = [
    "ivruniqueid",
    "type",
    "time",
    "caller",
    "target",
    "duration",
    "status",
    "leg1DialStatusName",
    "targetextension",
    "callerextension",
    "did",
    "queueid",
    "queuename",
    "record",
    "price",
    "dialtime",
    "representative_name",
    "representative_code",
    "targetextension_name",
    "callerextension_name",
    "target_country",
    "caller_country",
    "seconds_waiting_in_queue",
    "OriginalIvrUniqueID",
    "DepartmentName",
    "DepartmentID",
    "TopDepartmentName",
    "TopDepartmentID",
    "IVR",
];

/// A scalar's text: strings as they are, numbers and booleans as written; empty or
/// null: `None`.
fn text(field: &str, value: Option<&Value>) -> Result<Option<String>, String> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(Value::Bool(b)) => Ok(Some(b.to_string())),
        Some(_) => Err(format!(
            "{field} must be a single value, not a list or object"
        )),
    }
}

fn whole(field: &str, value: Option<&Value>) -> Result<Option<i64>, String> {
    let Some(text) = text(field, value)? else {
        return Ok(None);
    };
    let trimmed = text.trim();
    // A whole number written as `12.0` (XML-RPC `<double>`, some JSON encoders) is whole.
    let trimmed = trimmed
        .strip_suffix(".0")
        .filter(|t| !t.is_empty())
        .unwrap_or(trimmed);
    trimmed
        .parse::<i64>()
        .map(Some)
        .map_err(|_| format!("{field} is {text:?}, not a whole number"))
}

fn typed(fields: Map<String, Value>) -> Result<PushRecord, String> {
    let mut known: BTreeMap<&'static str, Value> = BTreeMap::new();
    let mut extra = Map::new();
    for (name, value) in fields {
        match FIELDS.iter().find(|f| f.eq_ignore_ascii_case(name.trim())) {
            Some(field) if known.contains_key(field) => {
                return Err(format!("field {field:?} appears twice"));
            }
            Some(field) => {
                known.insert(field, value);
            }
            None => {
                extra.insert(name, value);
            }
        }
    }
    let get = |name: &str| known.get(name);
    let t = |name: &'static str| text(name, get(name));
    let w = |name: &'static str| whole(name, get(name));
    let required = |name: &'static str| -> Result<String, String> {
        t(name)?
            .map(|v| v.trim().to_string())
            .ok_or_else(|| format!("{name} is missing or empty"))
    };
    let ivruniqueid = required("ivruniqueid")?;
    let r#type = required("type")?;
    let time = w("time")?.ok_or("time is missing or empty (epoch seconds)")?;
    if !(0..=253_402_300_799).contains(&time) {
        return Err(format!("time is {time}, not epoch seconds of a date"));
    }
    let ivr = ivr(get("IVR"))?;
    Ok(PushRecord {
        ivruniqueid,
        r#type,
        time,
        caller: t("caller")?,
        target: t("target")?,
        duration: w("duration")?,
        status: t("status")?,
        leg1_dial_status_name: t("leg1DialStatusName")?,
        targetextension: t("targetextension")?,
        callerextension: t("callerextension")?,
        did: t("did")?,
        queueid: t("queueid")?,
        queuename: t("queuename")?,
        record: t("record")?,
        price_agorot: w("price")?,
        dialtime: w("dialtime")?,
        representative_name: t("representative_name")?,
        representative_code: t("representative_code")?,
        targetextension_name: t("targetextension_name")?,
        callerextension_name: t("callerextension_name")?,
        target_country: t("target_country")?,
        caller_country: t("caller_country")?,
        seconds_waiting_in_queue: w("seconds_waiting_in_queue")?,
        original_ivr_unique_id: t("OriginalIvrUniqueID")?,
        department_name: t("DepartmentName")?,
        department_id: t("DepartmentID")?,
        top_department_name: t("TopDepartmentName")?,
        top_department_id: t("TopDepartmentID")?,
        ivr,
        extra: (!extra.is_empty()).then(|| Value::Object(extra).to_string()),
    })
}

/// The `IVR` list: a list of objects, or (from a form) a JSON string of one.
fn ivr(value: Option<&Value>) -> Result<Vec<IvrLayer>, String> {
    let parsed;
    let list = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(Vec::new()),
        Some(Value::String(s)) => {
            parsed = serde_json::from_str::<Value>(s)
                .map_err(|e| format!("IVR is not a JSON list: {e}"))?;
            &parsed
        }
        Some(other) => other,
    };
    let Value::Array(layers) = list else {
        return Err("IVR must be a list of layers".into());
    };
    layers
        .iter()
        .enumerate()
        .map(|(index, layer)| {
            let Value::Object(layer) = layer else {
                return Err(format!("IVR layer {index} is not an object"));
            };
            let field = |name: &str| {
                layer
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v)
            };
            let at = |name: &str| format!("IVR[{index}].{name}");
            Ok(IvrLayer {
                layer_id: text(&at("layer_id"), field("layer_id"))?,
                layer_name: text(&at("layer_name"), field("layer_name"))?,
                layer_number: text(&at("layer_number"), field("layer_number"))?,
                dtmf: text(&at("Dtmf"), field("Dtmf"))?,
                dtmf_order: whole(&at("dtmf_order"), field("dtmf_order"))?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON: &str = r#"{"caller":"0501234567","target":"039876543","time":1709287200,
        "duration":42,"ivruniqueid":"1709287200.17","type":"Incoming Call","status":"ANSWER",
        "price":"125","record":"https://rec.example/a.mp3","queueid":0,"Surprise":"x",
        "IVR":[{"layer_id":"7","layer_name":"Main","layer_number":"1","Dtmf":"2","dtmf_order":1}]}"#;

    fn expected() -> PushRecord {
        PushRecord {
            ivruniqueid: "1709287200.17".into(),
            r#type: "Incoming Call".into(),
            time: 1_709_287_200,
            caller: Some("0501234567".into()),
            target: Some("039876543".into()),
            duration: Some(42),
            status: Some("ANSWER".into()),
            leg1_dial_status_name: None,
            targetextension: None,
            callerextension: None,
            did: None,
            queueid: Some("0".into()),
            queuename: None,
            record: Some("https://rec.example/a.mp3".into()),
            price_agorot: Some(125),
            dialtime: None,
            representative_name: None,
            representative_code: None,
            targetextension_name: None,
            callerextension_name: None,
            target_country: None,
            caller_country: None,
            seconds_waiting_in_queue: None,
            original_ivr_unique_id: None,
            department_name: None,
            department_id: None,
            top_department_name: None,
            top_department_id: None,
            ivr: vec![IvrLayer {
                layer_id: Some("7".into()),
                layer_name: Some("Main".into()),
                layer_number: Some("1".into()),
                dtmf: Some("2".into()),
                dtmf_order: Some(1),
            }],
            extra: Some(r#"{"Surprise":"x"}"#.into()),
        }
    }

    #[test]
    fn the_three_formats_give_the_same_record() {
        assert_eq!(parse(Format::Json, JSON.as_bytes()).unwrap(), expected());
        let ivr = r#"[{"layer_id":"7","layer_name":"Main","layer_number":"1","Dtmf":"2","dtmf_order":1}]"#;
        let form = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("caller", "0501234567"),
                ("target", "039876543"),
                ("time", "1709287200"),
                ("duration", "42"),
                ("ivruniqueid", "1709287200.17"),
                ("type", "Incoming Call"),
                ("status", "ANSWER"),
                ("price", "125"),
                ("record", "https://rec.example/a.mp3"),
                ("queueid", "0"),
                ("Surprise", "x"),
                ("IVR", ivr),
                ("did", ""),
            ])
            .finish();
        assert_eq!(parse(Format::Form, form.as_bytes()).unwrap(), expected());
        let xml = r#"<?xml version="1.0"?>
<methodCall><methodName>cdr</methodName><params><param><value><struct>
<member><name>caller</name><value><string>0501234567</string></value></member>
<member><name>target</name><value>039876543</value></member>
<member><name>time</name><value><int>1709287200</int></value></member>
<member><name>duration</name><value><i4>42</i4></value></member>
<member><name>ivruniqueid</name><value><string>1709287200.17</string></value></member>
<member><name>type</name><value><string>Incoming Call</string></value></member>
<member><name>status</name><value><string>ANSWER</string></value></member>
<member><name>price</name><value><double>125.0</double></value></member>
<member><name>record</name><value><string>https://rec.example/a.mp3</string></value></member>
<member><name>queueid</name><value><int>0</int></value></member>
<member><name>Surprise</name><value><string>x</string></value></member>
<member><name>IVR</name><value><array><data><value><struct>
<member><name>layer_id</name><value><string>7</string></value></member>
<member><name>layer_name</name><value><string>Main</string></value></member>
<member><name>layer_number</name><value><int>1</int></value></member>
<member><name>Dtmf</name><value><string>2</string></value></member>
<member><name>dtmf_order</name><value><int>1</int></value></member>
</struct></value></data></array></value></member>
</struct></value></param></params></methodCall>"#;
        assert_eq!(parse(Format::XmlRpc, xml.as_bytes()).unwrap(), expected());
    }

    #[test]
    fn entities_and_cdata_in_xml_rpc() {
        let xml = "<methodCall><params><param><value><struct>\
            <member><name>ivruniqueid</name><value><string>a&amp;b&#x41;</string></value></member>\
            <member><name>type</name><value><![CDATA[Queue]]></value></member>\
            <member><name>time</name><value><int>1</int></value></member>\
            </struct></value></param></params></methodCall>";
        let record = parse(Format::XmlRpc, xml.as_bytes()).unwrap();
        assert_eq!(record.key(), ("a&bA", "Queue"));
    }

    #[test]
    fn reasons_name_the_field() {
        let cases: [(Format, &str, &str); 9] = [
            (Format::Json, "{", "the body is not JSON"),
            (Format::Json, "[1]", "not an object"),
            (
                Format::Json,
                r#"{"type":"Queue","time":1}"#,
                "ivruniqueid is missing",
            ),
            (
                Format::Json,
                r#"{"ivruniqueid":"1","type":"Queue","time":"soon"}"#,
                "time is \"soon\"",
            ),
            (
                Format::Json,
                r#"{"ivruniqueid":"1","type":"Queue","time":1,"price":"1.5"}"#,
                "price is \"1.5\"",
            ),
            (
                Format::Json,
                r#"{"ivruniqueid":"1","type":"Queue","time":1,"IVR":"[{]"}"#,
                "IVR is not a JSON list",
            ),
            (Format::Form, "ivruniqueid=1&ivruniqueid=2", "appears twice"),
            (Format::XmlRpc, "<html><body/></html>", "not an XML-RPC"),
            (
                Format::XmlRpc,
                "<methodCall><params><param><value><struct><member>",
                "ends inside",
            ),
        ];
        for (format, body, reason) in cases {
            let error = parse(format, body.as_bytes()).unwrap_err();
            assert!(error.contains(reason), "{body}: {error}");
        }
    }

    #[test]
    fn replies_in_each_format() {
        assert_eq!(Format::Json.reply(0, "OK"), r#"{"err":0,"errdesc":"OK"}"#);
        assert_eq!(
            Format::Form.reply(1, "parse error"),
            "err=1&errdesc=parse+error"
        );
        let xml = Format::XmlRpc.reply(2, "a<b");
        assert!(
            xml.contains("<name>err</name><value><int>2</int></value>"),
            "{xml}"
        );
        assert!(xml.contains("<string>a&lt;b</string>"), "{xml}");
    }

    #[test]
    fn format_from_content_type_or_first_byte() {
        assert_eq!(
            Format::of(Some("application/json; charset=utf-8"), b""),
            Format::Json
        );
        assert_eq!(Format::of(Some("text/xml"), b""), Format::XmlRpc);
        assert_eq!(
            Format::of(Some("application/x-www-form-urlencoded"), b"{"),
            Format::Form
        );
        assert_eq!(Format::of(None, b"  <methodCall>"), Format::XmlRpc);
        assert_eq!(Format::of(Some("text/plain"), b"{}"), Format::Json);
        assert_eq!(Format::of(None, b"a=b"), Format::Form);
    }
}
