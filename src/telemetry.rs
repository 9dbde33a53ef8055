//! Logging: `tracing` with an `EnvFilter` (RUST_LOG, default `info`), text or JSON lines, each
//! scrubbed of every secret of the loaded config and every URL credential before it is written
//! (see [`crate::redact`]).

use std::io::Write;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum LogFormat {
    /// Human-readable lines on stderr.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(Redacting(std::io::stderr));
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    // A second init (tests) keeps the first subscriber.
    let _ = result;
}

/// Wraps a writer maker (stderr): one [`RedactedEvent`] per log event.
#[derive(Debug, Clone, Copy, Default)]
pub struct Redacting<M>(pub M);

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for Redacting<M> {
    type Writer = RedactedEvent<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        RedactedEvent::new(self.0.make_writer())
    }
}

/// Collects one event's text and writes it, redacted, when dropped: a secret split across two
/// writes of the formatter is still found whole.
pub struct RedactedEvent<W: Write> {
    buf: Vec<u8>,
    out: W,
}

impl<W: Write> RedactedEvent<W> {
    pub fn new(out: W) -> Self {
        Self {
            buf: Vec::new(),
            out,
        }
    }
}

impl<W: Write> Write for RedactedEvent<W> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&self.buf);
        let clean = crate::redact::redact_output(&text);
        let result = self.out.write_all(clean.as_bytes());
        self.buf.clear();
        result.and_then(|()| self.out.flush())
    }
}

impl<W: Write> Drop for RedactedEvent<W> {
    fn drop(&mut self) {
        // Nowhere to report a failed log write to.
        let _ = self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_events_are_written_redacted() {
        crate::redact::register(["tele-secret-1234"]);
        let mut sink = Vec::new();
        {
            let mut ev = RedactedEvent::new(&mut sink);
            // The formatter may write an event in pieces: the secret is split across two.
            ev.write_all(b"step failed: tele-sec").unwrap();
            ev.write_all(b"ret-1234 via https://u:pw-1234@h/x\n")
                .unwrap();
        }
        assert_eq!(
            String::from_utf8(sink).unwrap(),
            "step failed: [redacted] via https://[redacted]@h/x\n"
        );
    }

    /// A shared buffer the formatter writes into.
    #[derive(Clone, Default)]
    struct Buf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl Write for Buf {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(data);
            Ok(data.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn text_and_json_log_lines_carry_no_secret() {
        let secret = "tele\"quoted\\secret";
        crate::redact::register([secret]);
        for json in [false, true] {
            let buf = Buf::default();
            let sink = buf.clone();
            let builder = tracing_subscriber::fmt()
                .with_writer(Redacting(move || sink.clone()))
                .with_ansi(false);
            let error = format!("git push to https://bot:tok-5678@h/r failed: {secret}");
            let emit =
                || tracing::warn!(error = %error, debug = ?error, "transient error; retrying");
            if json {
                tracing::subscriber::with_default(builder.json().finish(), emit);
            } else {
                tracing::subscriber::with_default(builder.finish(), emit);
            }
            let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
            assert!(out.contains("transient error; retrying"), "{out}");
            for leaked in ["tok-5678", "quoted", "secret"] {
                assert!(!out.contains(leaked), "json {json}: {out}");
            }
            assert!(out.contains("[redacted]"), "{out}");
        }
    }
}
