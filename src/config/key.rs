//! What a configuration key is: its name, what it takes and its default, declared
//! once per key as a constant in its section's module, whose doc comment says what it
//! is for (README's table and `config/example.toml` say the same to users; a test
//! checks that the three list the same keys).
//!
//! Each section module lists its keys (`KEYS`, or `keys()` where the feeds add their
//! folders, retention limits and names), and [`super::sections`] lists the sections:
//! that is how the keys are enumerated. Values are read only through
//! these constants, and in a debug build (every test) reading a section that takes a
//! key its table lacks, or leaves one of its table unread, panics.

use super::reader::Section;
use crate::retention::Keep;

/// Any key, for listing them.
#[derive(Debug, Clone, Copy)]
pub enum Key {
    Integer(Integer),
    Flag(Flag),
    Text(Text),
    List(List),
    Table(Table),
    Retention(Retention),
    IntegerOrWord(IntegerOrWord),
}

impl Key {
    pub const fn name(&self) -> &'static str {
        match self {
            Key::Integer(k) => k.name,
            Key::Flag(k) => k.name,
            Key::Text(k) => k.name,
            Key::List(k) => k.name,
            Key::Table(k) => k.name,
            Key::Retention(k) => k.name,
            Key::IntegerOrWord(k) => k.name,
        }
    }
}

/// A whole number from `min` to `max`, e.g. seconds.
#[derive(Debug, Clone, Copy)]
pub struct Integer {
    pub name: &'static str,
    pub min: i64,
    pub max: i64,
    pub default: i64,
}

impl Integer {
    pub fn read(&self, s: &mut Section<'_>) -> i64 {
        s.integer(self.name, self.min..=self.max)
            .unwrap_or(self.default)
    }
}

/// `true` or `false`.
#[derive(Debug, Clone, Copy)]
pub struct Flag {
    pub name: &'static str,
    pub default: bool,
}

impl Flag {
    pub fn read(&self, s: &mut Section<'_>) -> bool {
        s.bool(self.name).unwrap_or(self.default)
    }
}

/// A string. `default` is `None` when the key is required or optional, or when its
/// default is worked out (e.g. from `$HOME`); the reading code says which.
#[derive(Debug, Clone, Copy)]
pub struct Text {
    pub name: &'static str,
    pub default: Option<&'static str>,
}

impl Text {
    /// The value, if set.
    pub fn read_set(&self, s: &mut Section<'_>) -> Option<String> {
        s.string(self.name)
    }

    /// The value, or the default.
    pub fn read(&self, s: &mut Section<'_>) -> String {
        s.string(self.name)
            .or_else(|| self.default.map(str::to_string))
            .unwrap_or_default()
    }
}

/// A list of strings (comma-separated in an environment variable).
#[derive(Debug, Clone, Copy)]
pub struct List {
    pub name: &'static str,
    pub default: &'static [&'static str],
}

impl List {
    pub fn read(&self, s: &mut Section<'_>) -> Vec<String> {
        s.string_list(self.name)
            .unwrap_or_else(|| self.default.iter().map(|v| v.to_string()).collect())
    }
}

/// A table of scalars (e.g. a store's options); empty by default.
#[derive(Debug, Clone, Copy)]
pub struct Table {
    pub name: &'static str,
}

impl Table {
    pub fn read(&self, s: &mut Section<'_>) -> std::collections::BTreeMap<String, String> {
        s.string_map(self.name).unwrap_or_default()
    }
}

/// How long something is kept: `"forever"` or a number of days from 1 to 999.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub name: &'static str,
    pub default: Keep,
}

impl Retention {
    pub fn read(&self, s: &mut Section<'_>) -> Keep {
        match s.take_scalar(self.name) {
            None => self.default,
            Some(text) => Keep::parse(&text).unwrap_or_else(|| {
                s.issue(
                    self.name,
                    format!(
                        "is {text:?}; it must be \"forever\" or a number of days from 1 to 999"
                    ),
                );
                self.default
            }),
        }
    }
}

/// A whole number from `min` to `max`, or one word that stands for something else
/// (e.g. `"auto"`); a number may also be given as text (as from the environment).
#[derive(Debug, Clone, Copy)]
pub struct IntegerOrWord {
    pub name: &'static str,
    pub min: i64,
    pub max: i64,
    pub word: &'static str,
    pub default: NumberOrWord,
}

/// The value of an [`IntegerOrWord`] key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberOrWord {
    Number(i64),
    Word,
}

impl IntegerOrWord {
    pub fn read(&self, s: &mut Section<'_>) -> NumberOrWord {
        let Some(text) = s.take_scalar(self.name) else {
            return self.default;
        };
        let text = text.trim();
        if text == self.word {
            return NumberOrWord::Word;
        }
        match text.parse::<i64>() {
            Ok(n) if (self.min..=self.max).contains(&n) => NumberOrWord::Number(n),
            _ => {
                s.issue(
                    self.name,
                    format!(
                        "is {text:?}; it must be {:?} or a whole number from {} to {}",
                        self.word, self.min, self.max
                    ),
                );
                self.default
            }
        }
    }
}
