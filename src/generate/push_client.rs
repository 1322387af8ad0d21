//! A push provider's client: replays the records of `push/YYYY-MM-DD.jsonl` against
//! `cdr-ingest serve`, as the provider would: each record in one of the three formats
//! in turn (JSON, XML-RPC, form), every `resend_every`-th record sent twice (a lost
//! reply), a malformed body every `bad_every` records, and a record whose reply is not
//! 200 with err 0 sent again with a backoff, up to `tries` times. It writes every byte
//! of the bodies itself (never `formats/`), so it tests the parsers from outside.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Map, Value};

/// How to replay.
#[derive(Debug, Clone)]
pub struct Replay {
    /// `http(s)://host:port`; records go to `<base>/push/<token>`.
    pub base: String,
    pub token: String,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Every n-th record is sent a second time after its reply (0: never).
    pub resend_every: usize,
    /// A malformed body after every n-th record (0: never).
    pub bad_every: usize,
    /// Tries of a record before it is given up.
    pub tries: u32,
    /// Accept any server certificate (a test's self-signed one).
    pub insecure: bool,
}

impl Replay {
    pub fn new(base: &str, token: &str) -> Self {
        Replay {
            base: base.trim_end_matches('/').to_string(),
            token: token.to_string(),
            concurrency: 8,
            resend_every: 7,
            bad_every: 50,
            tries: 5,
            insecure: false,
        }
    }
}

/// What the replay saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Replayed {
    /// Records that got err 0, by key (`ivruniqueid`, `type`).
    pub acknowledged: BTreeSet<(String, String)>,
    /// Records given up after every try.
    pub given_up: BTreeSet<(String, String)>,
    pub requests: u64,
    pub resends: u64,
    /// Malformed bodies sent, and how many were answered 400 with err 1.
    pub bad_sent: u64,
    pub bad_refused: u64,
}

/// The three bodies a record can be posted as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    Json,
    XmlRpc,
    Form,
}

impl Body {
    pub fn content_type(self) -> &'static str {
        match self {
            Body::Json => "application/json",
            Body::XmlRpc => "text/xml",
            Body::Form => "application/x-www-form-urlencoded",
        }
    }

    /// `record` as this format's body.
    pub fn encode(self, record: &Map<String, Value>) -> String {
        match self {
            Body::Json => Value::Object(record.clone()).to_string(),
            Body::Form => {
                let mut form = url::form_urlencoded::Serializer::new(String::new());
                for (name, value) in record {
                    let text = match value {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    form.append_pair(name, &text);
                }
                form.finish()
            }
            Body::XmlRpc => {
                let mut xml = String::from(
                    "<?xml version=\"1.0\"?>\n<methodCall><methodName>pushCdr</methodName><params><param>",
                );
                xml_value(&mut xml, &Value::Object(record.clone()));
                xml.push_str("</param></params></methodCall>\n");
                xml
            }
        }
    }
}

fn xml_value(xml: &mut String, value: &Value) {
    xml.push_str("<value>");
    match value {
        Value::Object(members) => {
            xml.push_str("<struct>");
            for (name, v) in members {
                xml.push_str("<member><name>");
                xml.push_str(&escape(name));
                xml.push_str("</name>");
                xml_value(xml, v);
                xml.push_str("</member>");
            }
            xml.push_str("</struct>");
        }
        Value::Array(items) => {
            xml.push_str("<array><data>");
            for item in items {
                xml_value(xml, item);
            }
            xml.push_str("</data></array>");
        }
        Value::Number(n) if n.is_i64() => xml.push_str(&format!("<int>{n}</int>")),
        Value::Number(n) => xml.push_str(&format!("<double>{n}</double>")),
        Value::String(s) => xml.push_str(&format!("<string>{}</string>", escape(s))),
        Value::Bool(b) => xml.push_str(&format!("<boolean>{}</boolean>", u8::from(*b))),
        Value::Null => xml.push_str("<nil/>"),
    }
    xml.push_str("</value>");
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Malformed bodies, one per format.
const BAD_BODIES: [(Body, &str); 3] = [
    (Body::Json, "{\"ivruniqueid\": \"1.2\", \"type\": "),
    (
        Body::XmlRpc,
        "<methodCall><params><param><value><struct><member>",
    ),
    (Body::Form, "caller=0501234567&type=Queue"),
];

/// Whether a reply is the documented success: HTTP 200 and err 0.
fn is_ok(status: u16, body: &str) -> bool {
    status == 200
        && (body.contains("\"err\":0")
            || body.starts_with("err=0")
            || body.contains("<name>err</name><value><int>0</int>"))
}

/// Posts `lines` (the records of a `push/*.jsonl` file) as the provider would.
pub async fn replay(lines: &[String], options: &Replay) -> Result<Replayed, String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .tls_danger_accept_invalid_certs(options.insecure)
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
    let url = format!("{}/push/{}", options.base, options.token);
    let seen = Mutex::new(Replayed::default());
    let post = |body: Body, text: String| {
        let client = &client;
        let url = &url;
        let seen = &seen;
        async move {
            seen.lock().expect("not poisoned").requests += 1;
            let reply = client
                .post(url.as_str())
                .header("content-type", body.content_type())
                .body(text)
                .send()
                .await;
            match reply {
                Ok(reply) => {
                    let status = reply.status().as_u16();
                    let text = reply.text().await.unwrap_or_default();
                    Some((status, text))
                }
                Err(_) => None,
            }
        }
    };
    futures::stream::iter(lines.iter().enumerate())
        .for_each_concurrent(options.concurrency.max(1), |(index, line)| {
            let post = &post;
            let seen = &seen;
            async move {
                let Ok(Value::Object(record)) = serde_json::from_str::<Value>(line) else {
                    return;
                };
                let key = (
                    record
                        .get("ivruniqueid")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    record
                        .get("type")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                );
                let body = [Body::Json, Body::XmlRpc, Body::Form][index % 3];
                let text = body.encode(&record);
                let mut acknowledged = false;
                for attempt in 0..options.tries {
                    if attempt > 0 {
                        tokio::time::sleep(Duration::from_millis(50 << attempt.min(6))).await;
                    }
                    if let Some((status, reply)) = post(body, text.clone()).await
                        && is_ok(status, &reply)
                    {
                        acknowledged = true;
                        break;
                    }
                }
                if acknowledged
                    && options.resend_every > 0
                    && index % options.resend_every == options.resend_every - 1
                {
                    seen.lock().expect("not poisoned").resends += 1;
                    if let Some((status, reply)) = post(body, text.clone()).await
                        && !is_ok(status, &reply)
                    {
                        tracing::warn!(status, "a resend was not acknowledged");
                    }
                }
                if options.bad_every > 0 && index % options.bad_every == options.bad_every - 1 {
                    let (bad, text) = BAD_BODIES[(index / options.bad_every) % BAD_BODIES.len()];
                    let refused = post(bad, text.to_string())
                        .await
                        .is_some_and(|(status, reply)| status == 400 && !is_ok(status, &reply));
                    let mut seen = seen.lock().expect("not poisoned");
                    seen.bad_sent += 1;
                    seen.bad_refused += u64::from(refused);
                }
                let mut seen = seen.lock().expect("not poisoned");
                if acknowledged {
                    seen.acknowledged.insert(key);
                } else {
                    seen.given_up.insert(key);
                }
            }
        })
        .await;
    Ok(seen.into_inner().expect("not poisoned"))
}
