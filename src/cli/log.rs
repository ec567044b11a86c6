//! Logging for the `aisle` command and server: the tracing subscriber (text or JSON, filtered by
//! `RUST_LOG`) and a writer that PII-redacts each formatted line before it reaches stderr.
//!
//! Not for: deciding what is PII (`crate::privacy::pii`) or the audit log
//! (`crate::privacy::audit`).

use crate::config::Config;

/// Install the global subscriber (once; later calls do nothing): `RUST_LOG` or a quiet default
/// filter, text or JSON as `[server] log_format` says, every line redacted.
pub fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,qdrant_edge=error,tower_http=warn"));
    let writer = RedactingStderr(crate::privacy::pii::Redactor::new(&config.privacy.redact));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    let _ = if config.server.log_format == "json" { builder.json().try_init() } else { builder.try_init() };
}

/// Log output: each formatted line is PII-redacted before it reaches stderr.
struct RedactingStderr(crate::privacy::pii::Redactor);

/// One log event, collected and redacted when dropped.
pub struct RedactedLine<'a> {
    redactor: &'a crate::privacy::pii::Redactor,
    buf: Vec<u8>,
}

impl std::io::Write for RedactedLine<'_> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for RedactedLine<'_> {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.buf);
        let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), self.redactor.redact(&text).as_bytes());
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for RedactingStderr {
    type Writer = RedactedLine<'a>;
    fn make_writer(&'a self) -> Self::Writer {
        RedactedLine { redactor: &self.0, buf: Vec::with_capacity(256) }
    }
}
