//! Starting the server: the engine's thread, the listener, and axum until Ctrl-C or SIGTERM.

use dbrmt_runtime::Engine;
use dbrmt_tokenizer::Tokenizer;
use tokio::net::TcpListener;

use crate::app::{router, App};
use crate::config::ServerConfig;
use crate::error::ServerError;

/// Serves `engine` (and its tokenizer, for text) until the process is told to stop. Prints
/// `listening on http://ADDR` on stderr once requests are taken (with `--port 0`, ADDR has the port chosen).
pub fn run(engine: Engine, tokenizer: Option<Tokenizer>, config: ServerConfig) -> Result<(), ServerError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(ServerError::Runtime)?;
    runtime.block_on(async move {
        let addr = format!("{}:{}", config.host, config.port);
        let listener = TcpListener::bind(&addr).await.map_err(|source| ServerError::Bind {
            addr: addr.clone(),
            source,
        })?;
        let local = listener.local_addr().map_err(ServerError::Runtime)?;
        let app = App::start(engine, tokenizer, &config)?;
        eprintln!(
            "dbrmt serve: model `{}` listening on http://{local} (max {} running, {} queued)",
            config.model_name, config.limits.max_concurrent, config.limits.max_queued
        );
        axum::serve(listener, router(app))
            .with_graceful_shutdown(shutdown_signal())
            .await
            .map_err(ServerError::Runtime)
    })
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    eprintln!("dbrmt serve: shutting down");
}
