//! The reference point for what the machine can do: a bare WebSocket broadcast server.
//!
//! It speaks just enough Engine.IO and Socket.IO for the generator (open packet, namespace
//! connect, ping answers) and relays every `message` event frame unchanged to every
//! client. The frame is taken as received, so it is encoded once and shared by reference
//! by all recipients, and each client task writes whatever has queued up with one flush.
//! It stores nothing and checks nothing: the fastest a broadcast can be on this
//! runtime and WebSocket library.

use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// Frames queued per client before it counts as too slow and is closed.
const QUEUE: usize = 8192;

/// Serves until the process is stopped, on one thread.
pub async fn serve(listen: SocketAddr) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    eprintln!("reference server listening on {}", listener.local_addr()?);
    let (tx, _) = broadcast::channel::<Utf8Bytes>(QUEUE);
    let mut next_sid = 0u64;
    loop {
        let (stream, _) = listener.accept().await?;
        next_sid += 1;
        let tx = tx.clone();
        tokio::task::spawn_local(async move {
            if let Err(err) = client(stream, tx, next_sid).await {
                // The error's own text already names its cause.
                eprintln!("reference client {next_sid}: {err}");
            }
        });
    }
}

async fn client(
    stream: TcpStream,
    tx: broadcast::Sender<Utf8Bytes>,
    sid: u64,
) -> anyhow::Result<()> {
    stream.set_nodelay(true)?;
    let mut ws = tokio_tungstenite::accept_async(stream).await?;
    ws.send(Message::text(format!(
        r#"0{{"sid":"r{sid}","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}}"#
    )))
    .await?;
    let mut rx = tx.subscribe();
    loop {
        tokio::select! {
            frame = ws.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    if text.as_str().starts_with("42[\"message\"") {
                        // An error only means that no client is connected, so there is nothing to do.
                        let _ = tx.send(text);
                    } else if text.as_str().starts_with("40") {
                        ws.send(Message::text(format!(r#"40{{"sid":"s{sid}"}}"#))).await?;
                    }
                }
                Some(Ok(Message::Close(_))) | None => return Ok(()),
                Some(Ok(_)) => {}
                Some(Err(err)) => return Err(err.into()),
            },
            queued = rx.recv() => {
                let mut next = queued;
                loop {
                    match next {
                        Ok(frame) => ws.feed(Message::Text(frame)).await?,
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            anyhow::bail!("too slow, {n} frames skipped; closing");
                        }
                        Err(broadcast::error::RecvError::Closed) => return Ok(()),
                    }
                    next = match rx.try_recv() {
                        Ok(frame) => Ok(frame),
                        Err(broadcast::error::TryRecvError::Empty) => break,
                        Err(broadcast::error::TryRecvError::Lagged(n)) => Err(broadcast::error::RecvError::Lagged(n)),
                        Err(broadcast::error::TryRecvError::Closed) => Err(broadcast::error::RecvError::Closed),
                    };
                }
                ws.flush().await?;
            }
        }
    }
}
