//! The HTTP listener: axum (hyper) on the server's runtime, serving the REST API's router
//! until shutdown. Connections are hyper's tasks; a request in flight (a two-way RPC waiting
//! for its reply) ends on its own, event streams end at shutdown.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::log::LOG_TARGET;
use crate::rest::{router, tick_activity, Api, Jwt};
use crate::shared::Shared;

/// Serves HTTP on `listener` until `shutdown` turns true.
pub(crate) async fn serve(
    shared: Arc<Shared>,
    listener: TcpListener,
    shutdown: watch::Receiver<bool>,
) {
    let api = Arc::new(Api {
        jwt: Jwt::new(shared.config.admin.clone()),
        shared: shared.clone(),
    });
    tokio::spawn(tick_activity(shared, shutdown.clone()));
    let mut stop = shutdown;
    let result = axum::serve(listener, router(api))
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await;
    if let Err(e) = result {
        log::warn!(target: LOG_TARGET, "HTTP listener failed: {e}");
    }
}
