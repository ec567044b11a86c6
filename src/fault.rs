//! Fault injection for crash tests: `AISLE_FAULT=<point>` makes the process abort (as a
//! SIGKILL or power cut would stop it) when it reaches that point. Unset, it costs one
//! environment lookup at the few places that name a point.

/// Abort here if `AISLE_FAULT` names this point.
pub fn point(name: &str) {
    if std::env::var("AISLE_FAULT").is_ok_and(|v| v == name) {
        eprintln!("AISLE_FAULT: aborting at '{name}'");
        std::process::abort();
    }
}
