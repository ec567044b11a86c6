//! The connection loop: accept, serve each connection with hyper (HTTP/1.1 and HTTP/2), and
//! drain on shutdown.
//!
//! `axum::serve` has no timers, so a client that connects and sends nothing (or stops halfway
//! through its headers) would hold a connection forever. Here a connection must send its first
//! byte, and then its whole headers, within `[server] header_timeout_secs` (hyper's timer; it
//! also closes idle keep-alive connections after that time), and HTTP/2 connections are pinged.
//! Request bodies have their own timeout in the extractors (`extract`), which answers 408. On shutdown the listener closes, in-flight
//! requests get the grace period, and the connections still open after it are cut.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

/// Serve `router` on `listener` until `shutdown` resolves, then drain for up to `grace`.
pub async fn run(
    listener: TcpListener,
    router: Router,
    header_timeout: Duration,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(header_timeout))
        .keep_alive_timeout(header_timeout);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, most often: wait for connections to close.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let (builder, watcher) = (builder.clone(), graceful.watcher());
        tokio::spawn(async move {
            // hyper's header timer starts with the first byte (the protocol is told from it):
            // a client that connects and sends nothing is closed here.
            // (`readable()` can report a fresh socket ready before any byte: peek for one.)
            let mut first = [0u8; 1];
            if tokio::time::timeout(header_timeout, stream.peek(&mut first)).await.is_err() {
                return;
            }
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            // Closed by the client, timed out, or malformed: nothing to do.
            let _ = watcher.watch(connection.into_owned()).await;
        });
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
        tracing::warn!(secs = grace.as_secs(), "grace period over; closing the remaining connections");
    }
}
