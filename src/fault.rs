//! Fault injection for crash tests: `AISLE_FAULT=<point>` makes the process abort (as a
//! SIGKILL or power cut would stop it) when it reaches that point, or, for the points that
//! ask [`armed`], fail there (a chat sequence's forward pass; `api.products.read`, an internal
//! error or, for the id `panic`, a panic in `GET /v1/products/{id}`), or, at a [`stall`],
//! wait there (`profiles.rmw`: between reading and writing a stored profile, which makes
//! concurrent updates overlap). Unset, it costs one environment lookup at the few places that
//! name a point.

/// Whether `AISLE_FAULT` names this point (for faults other than aborting).
pub fn armed(name: &str) -> bool {
    std::env::var("AISLE_FAULT").is_ok_and(|v| v == name)
}

/// Abort here if `AISLE_FAULT` names this point.
pub fn point(name: &str) {
    if std::env::var("AISLE_FAULT").is_ok_and(|v| v == name) {
        eprintln!("AISLE_FAULT: aborting at '{name}'");
        std::process::abort();
    }
}

/// Wait a quarter of a second here if `AISLE_FAULT` names this point (widens a window that
/// concurrent requests must not race through).
pub async fn stall(name: &str) {
    if armed(name) {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}
