//! Machine-readable event lines: `@manul {"event":"NAME",...}`, one JSON object per line.
//! Tests and tools parse these, never the free-text log. The vocabulary is in
//! `docs/events.md`. The writer is heap-free so panics and exceptions can use it.

use core::fmt::{self, Write};

/// Prefix of every event line.
pub const PREFIX: &str = "@manul ";

/// Builds one event line on a [`fmt::Write`] sink. Fields are written as they are added.
pub struct Event<W: Write> {
    out: W,
    result: fmt::Result,
}

impl<W: Write> Event<W> {
    pub fn new(mut out: W, name: &str) -> Self {
        let result = write!(out, "{PREFIX}{{\"event\":").and_then(|_| write_json_string(&mut out, name));
        Event { out, result }
    }

    fn key(&mut self, key: &str) -> &mut W {
        self.result = self.result.and_then(|_| {
            self.out.write_char(',')?;
            write_json_string(&mut self.out, key)?;
            self.out.write_char(':')
        });
        &mut self.out
    }

    pub fn u64(&mut self, key: &str, value: u64) -> &mut Self {
        let r = write!(self.key(key), "{value}");
        self.result = self.result.and(r);
        self
    }

    pub fn bool(&mut self, key: &str, value: bool) -> &mut Self {
        let r = write!(self.key(key), "{value}");
        self.result = self.result.and(r);
        self
    }

    pub fn str(&mut self, key: &str, value: &str) -> &mut Self {
        let r = write_json_string(self.key(key), value);
        self.result = self.result.and(r);
        self
    }

    /// A string field formatted in place (escaped like any other string).
    pub fn display(&mut self, key: &str, value: impl fmt::Display) -> &mut Self {
        let out = self.key(key);
        let r = out.write_char('"').and_then(|_| write!(Escaper(out), "{value}")).and_then(|_| out.write_char('"'));
        self.result = self.result.and(r);
        self
    }

    /// Closes the line and hands back the sink.
    pub fn finish(mut self) -> (W, fmt::Result) {
        let r = self.out.write_str("}\n");
        (self.out, self.result.and(r))
    }
}

fn write_json_string<W: Write>(out: &mut W, s: &str) -> fmt::Result {
    out.write_char('"')?;
    Escaper(&mut *out).write_str(s)?;
    out.write_char('"')
}

/// Escapes what it is given for the inside of a JSON string.
struct Escaper<'a, W: Write>(&'a mut W);

impl<W: Write> Write for Escaper<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            match c {
                '"' => self.0.write_str("\\\"")?,
                '\\' => self.0.write_str("\\\\")?,
                '\n' => self.0.write_str("\\n")?,
                '\r' => self.0.write_str("\\r")?,
                '\t' => self.0.write_str("\\t")?,
                c if (c as u32) < 0x20 => write!(self.0, "\\u{:04x}", c as u32)?,
                c => self.0.write_char(c)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_in_order_with_escaping() {
        let mut e = Event::new(String::new(), "boot");
        e.u64("cpus", 4).bool("ok", true).str("msg", "a \"b\"\\\n\u{1}");
        e.display("where", format_args!("{}:{}", "x.rs", 7));
        let (line, r) = e.finish();
        r.unwrap();
        assert_eq!(
            line,
            "@manul {\"event\":\"boot\",\"cpus\":4,\"ok\":true,\"msg\":\"a \\\"b\\\"\\\\\\n\\u0001\",\"where\":\"x.rs:7\"}\n"
        );
    }
}
