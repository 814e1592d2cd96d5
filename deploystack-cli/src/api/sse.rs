//! Server-sent events as the server's followed build log sends them (`event: log` with a
//! JSON line, `event: end` with the final status, comments as keep-alives), read from a
//! blocking stream one event at a time.
//!
//! ## Why by hand?
//! The format is a dozen lines of rules (WHATWG HTML, "Parsing an event stream") and the
//! crates that implement it are built on async streams; the client here is blocking.

use std::io::{self, BufRead};

/// One event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Event {
    /// Its type (`log`, `end`); `message` when the stream did not name one.
    pub event: String,
    /// Its data, lines joined with `\n`.
    pub data: String,
    /// Its id, if it had one.
    pub id: Option<String>,
}

/// The events of a stream, in order; ends when the stream does.
pub struct Events<R> {
    reader: R,
    line: String,
}

impl<R: BufRead> Events<R> {
    /// The events read from `reader`.
    pub fn new(reader: R) -> Self {
        Self {
            reader,
            line: String::new(),
        }
    }
}

impl<R: BufRead> Iterator for Events<R> {
    type Item = io::Result<Event>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut event = Event::default();
        let mut data: Option<String> = None;
        loop {
            self.line.clear();
            match self.reader.read_line(&mut self.line) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(err) => return Some(Err(err)),
            }
            let line = self.line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                // A blank line dispatches the event, if it had data.
                match data.take() {
                    Some(data) => {
                        if event.event.is_empty() {
                            event.event = "message".to_owned();
                        }
                        event.data = data;
                        return Some(Ok(event));
                    }
                    None => {
                        event = Event::default();
                        continue;
                    }
                }
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
                None => (line, ""),
            };
            match field {
                "event" => event.event = value.to_owned(),
                "data" => match &mut data {
                    Some(data) => {
                        data.push('\n');
                        data.push_str(value);
                    }
                    None => data = Some(value.to_owned()),
                },
                "id" => event.id = Some(value.to_owned()),
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(text: &str) -> Vec<Event> {
        Events::new(text.as_bytes())
            .collect::<io::Result<Vec<_>>>()
            .unwrap()
    }

    #[test]
    fn log_and_end_events_are_read_with_their_ids_and_comments_are_skipped() {
        let stream = "event: log\nid: 1\ndata: {\"message\":\"a\"}\n\n: keep-alive\n\n\
                      event: log\r\nid: 2\r\ndata: {\"message\":\"b\"}\r\n\r\n\
                      event: end\ndata: {\"status\":\"READY\"}\n\n";
        let got = events(stream);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].event, "log");
        assert_eq!(got[0].id.as_deref(), Some("1"));
        assert_eq!(got[0].data, "{\"message\":\"a\"}");
        assert_eq!(got[1].data, "{\"message\":\"b\"}");
        assert_eq!(got[2].event, "end");
        assert_eq!(got[2].data, "{\"status\":\"READY\"}");
    }

    #[test]
    fn data_lines_join_and_an_unnamed_event_is_a_message() {
        let got = events("data: a\ndata:b\n\n");
        assert_eq!(
            got,
            vec![Event {
                event: "message".into(),
                data: "a\nb".into(),
                id: None
            }]
        );
    }

    #[test]
    fn an_event_cut_off_by_the_end_of_the_stream_is_not_dispatched() {
        assert!(events("event: log\ndata: x\n").is_empty());
        assert!(events("").is_empty());
    }
}
