//! Turns CRLF line endings into LF before the CSV reader sees them.
//!
//! The `csv` crate reports the line of a record one too low after a CRLF terminator
//! (it counts the `\n` only when the next record starts), and the quarantine must
//! name the right line. A `\r` not followed by `\n` passes through unchanged (the csv
//! reader then ends a record there, which keeps the line number of the `\n` lines, as
//! grep and editors count them); a CRLF inside a quoted field becomes LF.

use std::io::{BufRead, Read};

/// A reader that drops each `\r` directly followed by `\n`.
pub struct CrlfToLf<R> {
    inner: R,
    pending_cr: bool,
}

impl<R: BufRead> CrlfToLf<R> {
    pub fn new(inner: R) -> Self {
        CrlfToLf {
            inner,
            pending_cr: false,
        }
    }
}

impl<R: BufRead> Read for CrlfToLf<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let mut written = 0;
        while written == 0 && !out.is_empty() {
            let available = self.inner.fill_buf()?;
            if available.is_empty() {
                if std::mem::take(&mut self.pending_cr) {
                    out[0] = b'\r';
                    written = 1;
                }
                break;
            }
            let mut used = 0;
            while used < available.len() && written < out.len() {
                if std::mem::take(&mut self.pending_cr) && available[used] != b'\n' {
                    // A lone `\r`: emit it, then look at this byte again.
                    out[written] = b'\r';
                    written += 1;
                    continue;
                }
                // Copy everything up to the next `\r` in one go.
                let limit = (available.len() - used).min(out.len() - written);
                let chunk = &available[used..used + limit];
                let (copy, skip_cr) = match memchr::memchr(b'\r', chunk) {
                    Some(i) => (i, 1),
                    None => (limit, 0),
                };
                out[written..written + copy].copy_from_slice(&chunk[..copy]);
                written += copy;
                used += copy + skip_cr;
                self.pending_cr = skip_cr == 1;
            }
            self.inner.consume(used);
        }
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn convert(input: &[u8], capacity: usize, out_len: usize) -> Vec<u8> {
        let mut reader = CrlfToLf::new(std::io::BufReader::with_capacity(capacity, input));
        let mut all = Vec::new();
        let mut buf = vec![0; out_len];
        loop {
            let n = reader.read(&mut buf).unwrap();
            if n == 0 {
                return all;
            }
            all.extend_from_slice(&buf[..n]);
        }
    }

    #[test]
    fn crlf_becomes_lf_across_any_buffer_boundary() {
        let input = b"a,b\r\n1,\"x\ry\"\r\n\r\r\nend\r";
        for capacity in 1..8 {
            for out_len in 1..8 {
                assert_eq!(
                    convert(input, capacity, out_len),
                    b"a,b\n1,\"x\ry\"\n\r\nend\r",
                    "{capacity} {out_len}"
                );
            }
        }
    }
}
