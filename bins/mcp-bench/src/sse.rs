//! An incremental `text/event-stream` parser (the WHATWG event-stream rules): bytes go in
//! as they arrive, whole events come out.
//!
//! Lines end in CRLF, LF or CR; a line starting with `:` is a comment (keep-alives);
//! `data` lines are joined with `\n`; an event is dispatched at a blank line. An event
//! whose data is empty (a priming event that only carries an `id`) is not dispatched.
//! No resumption is done, so ids are only reported. An event larger than the limit is an error, so a
//! misbehaving server cannot make the parser grow without bound.

use anyhow::bail;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SseEvent {
    /// The `event` field; `None` means the default type, `message`.
    pub(crate) event: Option<String>,
    /// The joined `data` lines, without the final newline.
    pub(crate) data: Vec<u8>,
    /// The `id` field of this event, if it had one.
    pub(crate) id: Option<String>,
}

impl SseEvent {
    /// Whether this is a `message` event (named so, or unnamed).
    pub(crate) fn is_message(&self) -> bool {
        self.event.as_deref().is_none_or(|e| e == "message")
    }
}

/// The parser state: unconsumed bytes and the event being built.
#[derive(Debug)]
pub(crate) struct SseParser {
    buf: Vec<u8>,
    /// Where to resume the search for a line end in `buf`.
    scan: usize,
    /// Whether the last line ended in CR, so a leading LF belongs to it.
    skip_lf: bool,
    event: Option<String>,
    data: Vec<u8>,
    has_data: bool,
    id: Option<String>,
    max_event_bytes: usize,
}

impl SseParser {
    /// A parser refusing events (or lines) larger than `max_event_bytes`.
    pub(crate) fn new(max_event_bytes: usize) -> Self {
        Self {
            buf: Vec::new(),
            scan: 0,
            skip_lf: false,
            event: None,
            data: Vec::new(),
            has_data: false,
            id: None,
            max_event_bytes,
        }
    }

    /// Appends received bytes.
    pub(crate) fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete event from the bytes pushed so far, or `None` until more arrive.
    pub(crate) fn next_event(&mut self) -> anyhow::Result<Option<SseEvent>> {
        loop {
            if self.skip_lf && !self.buf.is_empty() {
                if self.buf[0] == b'\n' {
                    self.buf.drain(..1);
                }
                self.skip_lf = false;
            }
            let Some(rel) = self.buf[self.scan..]
                .iter()
                .position(|&b| b == b'\n' || b == b'\r')
            else {
                self.scan = self.buf.len();
                if self.buf.len() + self.data.len() > self.max_event_bytes {
                    bail!(
                        "event stream: an event is larger than the limit of {} bytes",
                        self.max_event_bytes
                    );
                }
                return Ok(None);
            };
            let end = self.scan + rel;
            let mut consumed = end + 1;
            if self.buf[end] == b'\r' {
                match self.buf.get(end + 1) {
                    Some(b'\n') => consumed += 1,
                    Some(_) => {}
                    // A CR at the very end: a LF may follow in the next chunk.
                    None => self.skip_lf = true,
                }
            }
            let line: Vec<u8> = self.buf.drain(..consumed).take(end).collect();
            self.scan = 0;
            if let Some(ev) = self.line(&line)? {
                return Ok(Some(ev));
            }
        }
    }

    /// Handles one line; a blank line may complete an event.
    fn line(&mut self, line: &[u8]) -> anyhow::Result<Option<SseEvent>> {
        if line.is_empty() {
            return Ok(self.dispatch());
        }
        if line[0] == b':' {
            return Ok(None);
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
                if self.data.len() > self.max_event_bytes {
                    bail!(
                        "event stream: an event is larger than the limit of {} bytes",
                        self.max_event_bytes
                    );
                }
            }
            b"event" => self.event = Some(String::from_utf8_lossy(value).into_owned()),
            b"id" if !value.contains(&0) => {
                self.id = Some(String::from_utf8_lossy(value).into_owned());
            }
            // `retry` and unknown fields do not matter to a load generator.
            _ => {}
        }
        Ok(None)
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = self.event.take();
        let id = self.id.take();
        if !std::mem::take(&mut self.has_data) || self.data.is_empty() {
            self.data.clear();
            return None;
        }
        Some(SseEvent {
            event,
            data: std::mem::take(&mut self.data),
            id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(p: &mut SseParser) -> Vec<SseEvent> {
        let mut out = Vec::new();
        while let Some(ev) = p.next_event().unwrap() {
            out.push(ev);
        }
        out
    }

    #[test]
    fn priming_event_and_keepalive_are_not_dispatched() {
        let mut p = SseParser::new(1 << 20);
        p.push(
            b"id: prime-1\ndata: \n\n: keep-alive\n\nevent: message\nid: 2\ndata: {\"id\":1}\n\n",
        );
        let evs = all(&mut p);
        assert_eq!(evs.len(), 1, "{evs:?}");
        assert_eq!(evs[0].data, b"{\"id\":1}");
        assert_eq!(evs[0].id.as_deref(), Some("2"));
        assert!(evs[0].is_message());
    }

    #[test]
    fn events_split_across_chunks_at_every_byte() {
        let stream = b"event: endpoint\r\ndata: /m?sessionId=a\r\n\r\ndata: one\r\ndata: two\r\r";
        for cut in 0..stream.len() {
            let mut p = SseParser::new(1 << 20);
            let mut evs = Vec::new();
            p.push(&stream[..cut]);
            evs.extend(all(&mut p));
            p.push(&stream[cut..]);
            evs.extend(all(&mut p));
            assert_eq!(evs.len(), 2, "cut at {cut}: {evs:?}");
            assert_eq!(evs[0].event.as_deref(), Some("endpoint"));
            assert!(!evs[0].is_message());
            assert_eq!(evs[0].data, b"/m?sessionId=a");
            assert_eq!(evs[1].data, b"one\ntwo", "cut at {cut}");
        }
    }

    #[test]
    fn crlf_split_between_chunks_is_one_line_end() {
        let mut p = SseParser::new(1 << 20);
        p.push(b"data: x\r");
        assert!(p.next_event().unwrap().is_none());
        p.push(b"\n\r\n");
        let evs = all(&mut p);
        assert_eq!(evs.len(), 1);
        assert_eq!(evs[0].data, b"x");
    }

    #[test]
    fn field_without_colon_and_without_space() {
        let mut p = SseParser::new(1 << 20);
        p.push(b"data:tight\ndata\n\n");
        let evs = all(&mut p);
        assert_eq!(evs[0].data, b"tight\n");
    }

    #[test]
    fn oversized_event_is_an_error_not_growth() {
        let mut p = SseParser::new(64);
        p.push(b"data: ");
        p.push(&[b'x'; 100]);
        let err = p.next_event().unwrap_err().to_string();
        assert!(err.contains("larger than the limit of 64 bytes"), "{err}");
        let mut p = SseParser::new(64);
        for _ in 0..10 {
            p.push(b"data: 0123456789\n");
        }
        assert!(p.next_event().is_err());
    }
}
