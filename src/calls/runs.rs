//! The join's sort, in bounded memory: contributions are gathered in runs of at most
//! [`RUN`] rows, each run sorted by call (`provider`, `call_id`) and, once there is
//! more than one, spilled to a temporary file; the runs are then merged back, so the
//! contributions of one call come out together, whatever the size of the date.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, Write};

use super::merge::Contribution;
use super::{Direction, Facts, Mapping, Outcome, Said};
use crate::feeds::FEEDS;

/// Contributions held in memory before a run is spilled (about 1 KiB each).
const RUN: usize = 16 * 1024;

/// Contributions of one date, in runs.
pub struct Runs {
    run: usize,
    held: Vec<Contribution<'static>>,
    spilled: Vec<File>,
}

impl Default for Runs {
    fn default() -> Self {
        Runs::of(RUN)
    }
}

fn key<'c>(c: &'c Contribution<'_>) -> (&'static str, &'c str) {
    (c.mapping.provider, &c.facts.call_id)
}

impl Runs {
    /// Runs of at most `run` contributions.
    pub fn of(run: usize) -> Self {
        Runs {
            run: run.max(1),
            held: Vec::new(),
            spilled: Vec::new(),
        }
    }

    /// Keeps `contribution`, its texts owned: it outlives the batch it was read from.
    pub fn push(&mut self, contribution: Contribution<'_>) -> io::Result<()> {
        self.held.push(Contribution {
            feed: contribution.feed,
            mapping: contribution.mapping,
            facts: contribution.facts.into_owned(),
        });
        if self.held.len() >= self.run {
            self.spill()?;
        }
        Ok(())
    }

    fn spill(&mut self) -> io::Result<()> {
        self.held.sort_by(|a, b| key(a).cmp(&key(b)));
        let mut out = BufWriter::new(tempfile::tempfile()?);
        for c in self.held.drain(..) {
            encode(&c, &mut out)?;
        }
        let mut file = out.into_inner().map_err(|e| e.into_error())?;
        file.rewind()?;
        self.spilled.push(file);
        Ok(())
    }

    /// Hands each call's contributions to `call`, in (`provider`, `call_id`) order.
    pub fn for_each_call(
        mut self,
        mut call: impl FnMut(Vec<Contribution<'static>>) -> io::Result<()>,
    ) -> io::Result<()> {
        if !self.spilled.is_empty() && !self.held.is_empty() {
            self.spill()?;
        }
        let mut sources: Vec<Source> = if self.spilled.is_empty() {
            self.held.sort_by(|a, b| key(a).cmp(&key(b)));
            vec![Source::Held(self.held.into_iter())]
        } else {
            self.spilled
                .into_iter()
                .map(|f| Source::Spilled(BufReader::new(f)))
                .collect()
        };
        // The head of each run, smallest first; the run's index breaks ties.
        let mut heads = BinaryHeap::new();
        let mut pending: Vec<Option<Contribution<'static>>> = Vec::with_capacity(sources.len());
        for (index, source) in sources.iter_mut().enumerate() {
            let head = source.next()?;
            if let Some(c) = &head {
                heads.push(Reverse((
                    c.mapping.provider,
                    c.facts.call_id.clone(),
                    index,
                )));
            }
            pending.push(head);
        }
        let mut group: Vec<Contribution<'static>> = Vec::new();
        while let Some(Reverse((_, _, index))) = heads.pop() {
            let c = pending[index].take().expect("a head for each entry");
            if group.first().is_some_and(|g| key(g) != key(&c)) {
                call(std::mem::take(&mut group))?;
            }
            group.push(c);
            let next = sources[index].next()?;
            if let Some(n) = &next {
                heads.push(Reverse((
                    n.mapping.provider,
                    n.facts.call_id.clone(),
                    index,
                )));
            }
            pending[index] = next;
        }
        if !group.is_empty() {
            call(group)?;
        }
        Ok(())
    }
}

enum Source {
    Held(std::vec::IntoIter<Contribution<'static>>),
    Spilled(BufReader<File>),
}

impl Source {
    fn next(&mut self) -> io::Result<Option<Contribution<'static>>> {
        match self {
            Source::Held(rows) => Ok(rows.next()),
            Source::Spilled(file) => decode(file),
        }
    }
}

// The spill format: the feed's and the mapping's places in `FEEDS`, then each field of
// `Facts` in order (a text as its length and bytes, `u32::MAX` for NULL; a number as a
// presence byte and its bytes). Written and read by this process only.

fn encode(c: &Contribution<'_>, out: &mut impl Write) -> io::Result<()> {
    let (feed, mapping) = place(c.mapping);
    out.write_all(&feed.to_le_bytes())?;
    out.write_all(&mapping.to_le_bytes())?;
    let f = &c.facts;
    text(out, Some(&f.call_id))?;
    for n in [f.started_at, f.answered_at, f.ended_at] {
        number(out, n)?;
    }
    out.write_all(&[match f.direction {
        None => 0,
        Some(Direction::Inbound) => 1,
        Some(Direction::Outbound) => 2,
        Some(Direction::Internal) => 3,
    }])?;
    for t in [
        &f.from_number,
        &f.to_number,
        &f.did,
        &f.destination,
        &f.called_name,
        &f.agent_id,
        &f.agent_name,
        &f.queue_id,
        &f.queue_name,
    ] {
        text(out, t.as_deref())?;
    }
    for n in [f.ring_seconds, f.wait_seconds, f.talk_seconds] {
        number(out, n)?;
    }
    let outcome = f
        .said
        .outcome
        .and_then(|o| Outcome::ALL.iter().position(|x| *x == o))
        .map_or(u8::MAX, |i| i as u8);
    out.write_all(&[outcome, u8::from(f.said.unmapped)])?;
    text(out, f.said.detail.as_deref())?;
    match f.cost {
        None => out.write_all(&[0])?,
        Some(cost) => {
            out.write_all(&[1])?;
            out.write_all(&cost.to_le_bytes())?;
        }
    }
    text(out, f.currency.as_deref())?;
    text(out, f.recording_key.as_deref())?;
    text(out, Some(&f.source_object))?;
    number(out, f.source_line)
}

fn decode(input: &mut impl Read) -> io::Result<Option<Contribution<'static>>> {
    let mut places = [0u8; 4];
    match input.read_exact(&mut places) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let feed = &FEEDS[usize::from(u16::from_le_bytes([places[0], places[1]]))];
    let mapping = &feed.calls[usize::from(u16::from_le_bytes([places[2], places[3]]))];
    let call_id = read_text(input)?.unwrap_or_default();
    let (started_at, answered_at, ended_at) = (
        read_number(input)?,
        read_number(input)?,
        read_number(input)?,
    );
    let direction = match byte(input)? {
        1 => Some(Direction::Inbound),
        2 => Some(Direction::Outbound),
        3 => Some(Direction::Internal),
        _ => None,
    };
    let mut texts = [const { None::<Cow<'static, str>> }; 9];
    for t in texts.iter_mut() {
        *t = read_text(input)?;
    }
    let [
        from_number,
        to_number,
        did,
        destination,
        called_name,
        agent_id,
        agent_name,
        queue_id,
        queue_name,
    ] = texts;
    let (ring_seconds, wait_seconds, talk_seconds) = (
        read_number(input)?,
        read_number(input)?,
        read_number(input)?,
    );
    let outcome = Outcome::ALL.get(usize::from(byte(input)?)).copied();
    let unmapped = byte(input)? == 1;
    let detail = read_text(input)?;
    let cost = if byte(input)? == 1 {
        let mut bytes = [0u8; 16];
        input.read_exact(&mut bytes)?;
        Some(i128::from_le_bytes(bytes))
    } else {
        None
    };
    Ok(Some(Contribution {
        feed: feed.category.as_str(),
        mapping,
        facts: Facts {
            call_id,
            started_at,
            answered_at,
            ended_at,
            direction,
            from_number,
            to_number,
            did,
            destination,
            called_name,
            agent_id,
            agent_name,
            queue_id,
            queue_name,
            ring_seconds,
            wait_seconds,
            talk_seconds,
            said: Said {
                outcome,
                detail,
                unmapped,
            },
            cost,
            currency: read_text(input)?,
            recording_key: read_text(input)?,
            source_object: read_text(input)?.unwrap_or_default(),
            source_line: read_number(input)?,
        },
    }))
}

/// Where `mapping` is in the registry: its feed's index and its own.
fn place(mapping: &'static Mapping) -> (u16, u16) {
    FEEDS
        .iter()
        .enumerate()
        .find_map(|(f, feed)| {
            feed.calls
                .iter()
                .position(|m| std::ptr::eq(m, mapping))
                .map(|m| (f as u16, m as u16))
        })
        .expect("every mapping is a feed's")
}

fn text(out: &mut impl Write, value: Option<&str>) -> io::Result<()> {
    match value {
        None => out.write_all(&u32::MAX.to_le_bytes()),
        Some(t) => {
            out.write_all(&(t.len() as u32).to_le_bytes())?;
            out.write_all(t.as_bytes())
        }
    }
}

fn number(out: &mut impl Write, value: Option<i64>) -> io::Result<()> {
    match value {
        None => out.write_all(&[0]),
        Some(n) => {
            out.write_all(&[1])?;
            out.write_all(&n.to_le_bytes())
        }
    }
}

fn byte(input: &mut impl Read) -> io::Result<u8> {
    let mut b = [0u8; 1];
    input.read_exact(&mut b)?;
    Ok(b[0])
}

fn read_text(input: &mut impl Read) -> io::Result<Option<Cow<'static, str>>> {
    let mut len = [0u8; 4];
    input.read_exact(&mut len)?;
    let len = u32::from_le_bytes(len);
    if len == u32::MAX {
        return Ok(None);
    }
    let mut bytes = vec![0u8; len as usize];
    input.read_exact(&mut bytes)?;
    String::from_utf8(bytes)
        .map(|text| Some(Cow::Owned(text)))
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

fn read_number(input: &mut impl Read) -> io::Result<Option<i64>> {
    if byte(input)? == 0 {
        return Ok(None);
    }
    let mut bytes = [0u8; 8];
    input.read_exact(&mut bytes)?;
    Ok(Some(i64::from_le_bytes(bytes)))
}
