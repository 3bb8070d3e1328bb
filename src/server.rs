//! Wires the layers into a running server: store, hub, service, gateways, listeners and
//! the shutdown sequence.

use crate::config::ServeArgs;
use crate::gateway::http::{self, AppState};
use crate::gateway::irc::{self, IrcGateway, IrcSettings};
use crate::gateway::socketio::{self, SocketIoSettings};
use crate::hub::Hub;
use crate::hub::bus::{Bus, BusSettings};
use crate::service::{ChatService, ServiceConfig};
use crate::store::{PgSettings, PgStore, SqliteStore, Store};
use crate::telemetry::Metrics;
use anyhow::Context;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// How often expired sessions and idle rate-limit state are cleared.
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(600);

/// Derives the service rules from the command-line options.
pub fn service_config(args: &ServeArgs) -> ServiceConfig {
    ServiceConfig {
        max_message_chars: args.max_message_chars as usize,
        allow_guests: args.allow_guests,
        min_password_chars: args.min_password_chars as usize,
        allow_guest_rooms: args.allow_guest_rooms,
        session_ttl: Duration::from_secs(args.session_ttl_hours * 3600),
        guest_session_ttl: Duration::from_secs(args.guest_session_ttl_hours * 3600),
        send_burst: args.send_burst,
        send_per_second: args.send_rate,
        auth_burst: args.auth_burst,
        auth_per_minute: args.auth_rate,
        argon2_memory_kib: args.argon2_memory_kib,
        argon2_passes: args.argon2_passes,
        avatar_dir: args.data_dir.join("avatars"),
        max_avatar_bytes: args.max_avatar_bytes as usize,
        operators: args.irc_oper.clone(),
    }
}

/// Opens PostgreSQL when a database URL is set, else the SQLite file in the data directory.
pub async fn open_store(args: &ServeArgs) -> anyhow::Result<Arc<dyn Store>> {
    match &args.database_url {
        Some(url) => {
            let mut settings = PgSettings::new(url);
            settings.max_connections = args.database_connections;
            Ok(Arc::new(PgStore::open(&settings).await?))
        }
        None => {
            let path = args.data_dir.join("confab.db");
            Ok(Arc::new(SqliteStore::open(&path).await?))
        }
    }
}

/// Runs the server until SIGINT or SIGTERM, then shuts it down in order.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("failed to listen on {}", args.listen))?;
    serve(listener, args, shutdown_signal()).await
}

/// Runs the server on a bound listener until `shutdown` completes. Tests bind port 0.
pub async fn serve(
    listener: TcpListener,
    args: ServeArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // The default allowed origins name the listen port, so use the bound one, not 0.
    let args = ServeArgs {
        listen: listener.local_addr()?,
        ..args
    };
    // Open the store and build the layers bottom-up.
    std::fs::create_dir_all(&args.data_dir).with_context(|| {
        format!(
            "failed to create data directory {}",
            args.data_dir.display()
        )
    })?;
    let store = open_store(&args).await?;
    let metrics = Arc::new(Metrics::new());
    let hub = Arc::new(Hub::new(metrics.clone()));
    if let Some(url) = &args.redis_url {
        let settings = BusSettings {
            url: url.clone(),
            prefix: args.redis_prefix.clone(),
        };
        hub.attach_bus(Bus::start(&settings, &hub, store.clone())?);
    }
    let service =
        Arc::new(ChatService::new(store, hub.clone(), service_config(&args), metrics).await?);

    // Gateways.
    let settings = SocketIoSettings {
        ping_interval: Duration::from_secs(args.ping_interval_secs.max(1)),
        ping_timeout: Duration::from_secs(args.ping_timeout_secs.max(1)),
        outbound_queue: args.outbound_queue as usize,
        max_payload: u64::from(args.max_request_bytes),
    };
    let (sio_layer, io) = socketio::layer(service.clone(), &settings);
    let state = AppState {
        service: service.clone(),
        io: io.clone(),
        origins: Arc::new(args.effective_origins()),
        secure_cookies: args.tls_cert.is_some(),
        trusted_proxies: Arc::new(args.trusted_proxies.clone()),
    };
    let app = http::router(
        state,
        sio_layer,
        args.max_request_bytes as usize,
        args.max_avatar_bytes as usize,
    )
    .into_make_service_with_connect_info::<SocketAddr>();

    // Periodic cleanup.
    let housekeeping = {
        let service = service.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(HOUSEKEEPING_INTERVAL);
            loop {
                tick.tick().await;
                match service.housekeeping().await {
                    Ok(done) if done.expired_sessions > 0 || done.deleted_guests > 0 => {
                        tracing::info!(
                            expired_sessions = done.expired_sessions,
                            deleted_guests = done.deleted_guests,
                            "housekeeping removed stale data"
                        );
                    }
                    Ok(_) => {}
                    Err(err) => tracing::warn!(cause = %err, "housekeeping failed"),
                }
            }
        })
    };

    // IRC gateway, bound before the listening line so scripts can connect once it shows.
    let irc = if args.irc_enabled {
        Some(start_irc(&args, service.clone()).await?)
    } else {
        None
    };

    let addr = listener.local_addr()?;
    let scheme = if args.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    tracing::info!(%addr, data_dir = %args.data_dir.display(), "confab listening");
    // A plain line on stdout, for people and for scripts that wait for the port.
    println!("confab listening on {scheme}://{addr}");

    // Serve until the shutdown signal; then close real-time connections first, because
    // upgraded WebSockets would otherwise hold the HTTP drain open.
    let drain = Duration::from_secs(args.drain_timeout_secs);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let shutdown_io = io.clone();
    let shutdown_service = service.clone();
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutdown requested: closing connections");
        if let Some(irc) = &irc {
            irc.shutdown();
        }
        socketio::close_all(&shutdown_io);
        if !shutdown_service.drain_writes(drain).await {
            tracing::warn!(?drain, "writes still running at the drain deadline");
        }
        let _ = stop_tx.send(true);
    });
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };

    match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            // ring builds with no C toolchain beyond cc; its lack of post-quantum key
            // exchange is the reason for the deprecation notice.
            #[allow(deprecated)]
            let _ = rustls::crypto::ring::default_provider().install_default();
            let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                .await
                .with_context(|| {
                    format!(
                        "failed to load TLS certificate {} and key {}",
                        cert.display(),
                        key.display()
                    )
                })?;
            let handle = axum_server::Handle::new();
            let stopper = handle.clone();
            let stop = stopped();
            tokio::spawn(async move {
                stop.await;
                stopper.graceful_shutdown(Some(drain));
            });
            axum_server::from_tcp_rustls(listener.into_std()?, tls)?
                .handle(handle)
                .serve(app)
                .await?;
        }
        _ => {
            let server = axum::serve(listener, app).with_graceful_shutdown(stopped());
            // The drain deadline also bounds how long open HTTP requests hold shutdown.
            let deadline = stopped();
            tokio::select! {
                result = server => result?,
                _ = async { deadline.await; tokio::time::sleep(drain).await } => {
                    tracing::warn!(?drain, "HTTP connections still open at the drain deadline");
                }
            }
        }
    }

    housekeeping.abort();
    io.close().await;
    service.close_store().await;
    tracing::info!("store closed; shutdown complete");
    Ok(())
}

/// Binds the IRC listeners and starts the gateway. Prints one line per listener.
async fn start_irc(args: &ServeArgs, service: Arc<ChatService>) -> anyhow::Result<IrcGateway> {
    let settings = IrcSettings {
        server_name: args.irc_server_name.clone(),
        nick_max_chars: args.irc_nick_length as usize,
        sendq_bytes: args.irc_sendq_bytes as usize,
        flood_burst: args.irc_flood_burst,
        flood_rate: args.irc_flood_rate,
        registration_timeout: Duration::from_secs(args.irc_registration_timeout_secs),
    };
    let mut listeners = Vec::new();
    let plain = irc::bind(args.irc_listen, None)
        .await
        .with_context(|| format!("failed to listen for IRC on {}", args.irc_listen))?;
    println!("confab irc listening on irc://{}", irc::local_addr(&plain)?);
    listeners.push(plain);

    if let (Some(addr), Some(cert), Some(key)) =
        (args.irc_tls_listen, &args.tls_cert, &args.tls_key)
    {
        #[allow(deprecated)]
        let _ = rustls::crypto::ring::default_provider().install_default();
        let loaded = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
            .await
            .with_context(|| {
                format!(
                    "failed to load TLS certificate {} and key {}",
                    cert.display(),
                    key.display()
                )
            })?;
        // The HTTP configuration offers h2 and http/1.1 by ALPN; IRC clients offer none.
        let mut config = (*loaded.get_inner()).clone();
        config.alpn_protocols.clear();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let secure = irc::bind(addr, Some(acceptor))
            .await
            .with_context(|| format!("failed to listen for IRC over TLS on {addr}"))?;
        println!(
            "confab irc listening on ircs://{}",
            irc::local_addr(&secure)?
        );
        listeners.push(secure);
    }
    Ok(IrcGateway::start(service, settings, listeners))
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(cause = %err, "failed to listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(err) => {
                tracing::error!(cause = %err, "failed to listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
