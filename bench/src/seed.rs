//! Fills a stopped Confab's SQLite database with benchmark accounts, rooms and history.
//!
//! Creating thousands of accounts through the API would spend minutes on one fsync per
//! account, and every guest created by a handshake joins the lobby, which fans a `join`
//! message out to everyone already connected. The seed writes the rows directly
//! instead, in a few transactions, and records the tokens in a manifest. It depends on
//! Confab's schema (migrations/sqlite), so the bench smoke test runs it on every change.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::Connection;
use sqlx::sqlite::SqliteConnection;
use std::path::Path;

/// Accounts, rooms and history created by the seed, read by the scenarios.
#[derive(Debug, Serialize, Deserialize)]
pub struct Manifest {
    /// Session tokens of the seeded guests, in user order.
    pub tokens: Vec<String>,
    /// Rooms, each with the indexes of its members in `tokens`; every user is in one.
    pub rooms: Vec<SeededRoom>,
    /// The room holding the history messages, and how many it holds.
    pub history_room: i64,
    pub history_messages: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct SeededRoom {
    pub id: i64,
    pub members: Vec<usize>,
}

/// Sizes of what to seed.
#[derive(Clone, Debug, clap::Args)]
pub struct SeedArgs {
    /// Path of Confab's database (DATA_DIR/confab.db); the server must be stopped.
    #[arg(long)]
    pub db: std::path::PathBuf,
    /// Guest accounts to create, each with a session.
    #[arg(long, default_value_t = 20_000)]
    pub users: usize,
    /// Smallest room size; users are split into rooms of random sizes.
    #[arg(long, default_value_t = 10)]
    pub room_min: usize,
    /// Largest room size.
    #[arg(long, default_value_t = 50)]
    pub room_max: usize,
    /// Messages to store in the history room.
    #[arg(long, default_value_t = 1_000_000)]
    pub messages: u64,
    /// Output file for the manifest.
    #[arg(long)]
    pub manifest: std::path::PathBuf,
}

/// Rows inserted per statement of the history fill.
const MESSAGE_BATCH: u64 = 100_000;

/// Seeds the database and writes the manifest.
pub async fn run(args: &SeedArgs) -> anyhow::Result<Manifest> {
    anyhow::ensure!(
        args.room_min >= 1 && args.room_min <= args.room_max,
        "room sizes must satisfy 1 <= --room-min <= --room-max"
    );
    let url = format!("sqlite://{}", args.db.display());
    let mut db = SqliteConnection::connect(&url).await?;
    sqlx::query("PRAGMA synchronous = OFF")
        .execute(&mut db)
        .await?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let expires = now + 365 * 24 * 3600 * 1000;
    let mut rng = StdRng::seed_from_u64(5);
    let run_tag: u32 = rng.random();

    let mut tx = db.begin().await?;
    let mut tokens = Vec::with_capacity(args.users);
    let mut user_ids = Vec::with_capacity(args.users);
    for i in 0..args.users {
        let name = format!("bench-{i}");
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO users (display_name, kind, created_at) VALUES ($1, 'guest', $2) RETURNING id",
        )
        .bind(&name)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let token = format!("bench-{run_tag:08x}-{i}");
        let hash = hex_sha256(&token);
        sqlx::query(
            "INSERT INTO sessions (user_id, token_hash, csrf_token, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(hash)
        .bind(format!("csrf-{i}"))
        .bind(now)
        .bind(expires)
        .execute(&mut *tx)
        .await?;
        tokens.push(token);
        user_ids.push(id);
    }

    let mut rooms = Vec::new();
    let mut next = 0;
    while next < args.users {
        let size = rng
            .random_range(args.room_min..=args.room_max)
            .min(args.users - next);
        let name = format!("bench-{run_tag:08x}-{}", rooms.len());
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO rooms (name, name_key, visibility, owner_id, created_at) VALUES ($1, $1, 'public', $2, $3) RETURNING id",
        )
        .bind(&name)
        .bind(user_ids[next])
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let members: Vec<usize> = (next..next + size).collect();
        for &m in &members {
            sqlx::query(
                "INSERT INTO memberships (room_id, user_id, role, joined_at) VALUES ($1, $2, 'member', $3)",
            )
            .bind(id)
            .bind(user_ids[m])
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        rooms.push(SeededRoom { id, members });
        next += size;
    }

    let history_room: i64 = sqlx::query_scalar(
        "INSERT INTO rooms (name, name_key, visibility, created_at) VALUES ($1, $1, 'public', $2) RETURNING id",
    )
    .bind(format!("bench-{run_tag:08x}-history"))
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;

    let author = user_ids.first().copied();
    let mut stored = 0;
    while stored < args.messages {
        let batch = MESSAGE_BATCH.min(args.messages - stored);
        sqlx::query(
            "WITH RECURSIVE n(i) AS (SELECT $1 UNION ALL SELECT i + 1 FROM n WHERE i < $2) \
             INSERT INTO messages (room_id, seq, kind, author_id, author_name, body, created_at, rev) \
             SELECT $3, i, 'text', $4, 'bench', 'history message number ' || i, $5, i FROM n",
        )
        .bind(stored as i64 + 1)
        .bind((stored + batch) as i64)
        .bind(history_room)
        .bind(author)
        .bind(now)
        .execute(&mut db)
        .await?;
        stored += batch;
    }
    sqlx::query("UPDATE rooms SET last_seq = $1, last_rev = $1 WHERE id = $2")
        .bind(stored as i64)
        .bind(history_room)
        .execute(&mut db)
        .await?;
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut db)
        .await?;
    db.close().await?;

    let manifest = Manifest {
        tokens,
        rooms,
        history_room,
        history_messages: stored,
    };
    write_json(&args.manifest, &manifest)?;
    Ok(manifest)
}

fn hex_sha256(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Reads a manifest written by [`run`].
pub fn read_manifest(path: &Path) -> anyhow::Result<Manifest> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| anyhow::anyhow!("reading the manifest {}: {err}", path.display()))?;
    Ok(serde_json::from_str(&text)?)
}

/// Writes `value` as pretty JSON.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    std::fs::write(path, text + "\n")
        .map_err(|err| anyhow::anyhow!("writing {}: {err}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_hash_is_lowercase_hex_sha256() {
        assert_eq!(
            hex_sha256("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
