//! `confab migrate-store`: copies an SQLite database into an empty PostgreSQL one, table
//! by table with the original ids, in one PostgreSQL transaction. Row counts of every
//! table are compared before the commit, so a failed or partial copy leaves the target
//! as it was.

use super::Store;
use super::postgres::{PgSettings, PgStore, redact};
use super::sqlite::SqliteStore;
use anyhow::{Context, bail};
use sqlx::postgres::PgArguments;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{Arguments, Row};
use std::path::Path;

/// A column's storage class; both backends use only these two.
#[derive(Clone, Copy)]
enum Kind {
    Int,
    Text,
}

/// Tables in foreign-key order, with their columns.
const TABLES: &[(&str, &[(&str, Kind)])] = &[
    (
        "users",
        &[
            ("id", Kind::Int),
            ("username", Kind::Text),
            ("username_key", Kind::Text),
            ("display_name", Kind::Text),
            ("kind", Kind::Text),
            ("password_hash", Kind::Text),
            ("avatar", Kind::Text),
            ("created_at", Kind::Int),
        ],
    ),
    (
        "sessions",
        &[
            ("id", Kind::Int),
            ("user_id", Kind::Int),
            ("token_hash", Kind::Text),
            ("csrf_token", Kind::Text),
            ("created_at", Kind::Int),
            ("expires_at", Kind::Int),
        ],
    ),
    (
        "rooms",
        &[
            ("id", Kind::Int),
            ("name", Kind::Text),
            ("name_key", Kind::Text),
            ("topic", Kind::Text),
            ("visibility", Kind::Text),
            ("owner_id", Kind::Int),
            ("last_seq", Kind::Int),
            ("last_rev", Kind::Int),
            ("created_at", Kind::Int),
            ("moderated", Kind::Int),
            ("topic_locked", Kind::Int),
        ],
    ),
    (
        "memberships",
        &[
            ("room_id", Kind::Int),
            ("user_id", Kind::Int),
            ("role", Kind::Text),
            ("joined_at", Kind::Int),
        ],
    ),
    (
        "invites",
        &[
            ("room_id", Kind::Int),
            ("user_id", Kind::Int),
            ("invited_by", Kind::Int),
            ("created_at", Kind::Int),
        ],
    ),
    (
        "bans",
        &[
            ("room_id", Kind::Int),
            ("user_id", Kind::Int),
            ("banned_by", Kind::Int),
            ("reason", Kind::Text),
            ("created_at", Kind::Int),
        ],
    ),
    (
        "messages",
        &[
            ("id", Kind::Int),
            ("room_id", Kind::Int),
            ("seq", Kind::Int),
            ("kind", Kind::Text),
            ("author_id", Kind::Int),
            ("author_name", Kind::Text),
            ("body", Kind::Text),
            ("target_id", Kind::Int),
            ("target_name", Kind::Text),
            ("client_msg_id", Kind::Text),
            ("created_at", Kind::Int),
            ("edited_at", Kind::Int),
            ("deleted_at", Kind::Int),
            ("deleted_by", Kind::Int),
            ("rev", Kind::Int),
        ],
    ),
];

/// Tables whose `id` column draws from an identity sequence in PostgreSQL.
const IDENTITY_TABLES: &[&str] = &["users", "sessions", "rooms", "messages"];

/// Rows copied per table.
#[derive(Debug, PartialEq, Eq)]
pub struct Copied {
    pub table: &'static str,
    pub rows: i64,
}

/// Copies the SQLite database at `from` into the PostgreSQL database at `to`, which must
/// hold no data yet beyond what its migrations create. Returns the rows per table.
pub async fn migrate(from: &Path, to: &PgSettings) -> anyhow::Result<Vec<Copied>> {
    if !from.is_file() {
        bail!("SQLite database {} not found", from.display());
    }
    // Opening applies any pending SQLite migrations, so the source has the current
    // schema; then a read-only pool reads it.
    let current = SqliteStore::open(from).await?;
    Store::close(&current).await;
    let source = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(SqliteConnectOptions::new().filename(from).read_only(true))
        .await
        .with_context(|| format!("failed to open {} read-only", from.display()))?;
    let target = PgStore::open(to).await?;
    let pool = target.pool();

    let mut tx = pool.begin().await?;
    let result = copy_all(&source, &mut tx, &to.url).await;
    // Roll back explicitly on failure, so no lock outlives the call.
    let finished = match result {
        Ok(copied) => tx
            .commit()
            .await
            .context("failed to commit the copy")
            .map(|()| copied),
        Err(err) => {
            if let Err(rollback) = tx.rollback().await {
                tracing::warn!(cause = %rollback, "rollback after a failed copy failed");
            }
            Err(err)
        }
    };
    source.close().await;
    target.pool().close().await;
    finished
}

/// Copies every table inside `tx` and compares the row counts.
async fn copy_all(
    source: &sqlx::SqlitePool,
    tx: &mut sqlx::PgConnection,
    url: &str,
) -> anyhow::Result<Vec<Copied>> {
    ensure_empty(&mut *tx, url).await?;
    // The migrations create the lobby; the source has its own, with the same id.
    sqlx::query("DELETE FROM rooms").execute(&mut *tx).await?;

    let mut copied = Vec::new();
    for (table, columns) in TABLES {
        let rows = copy_table(source, &mut *tx, table, columns).await?;
        copied.push(Copied { table, rows });
    }
    for table in IDENTITY_TABLES {
        // Set each sequence past the copied ids, so new rows do not collide.
        let statement = format!(
            "SELECT setval(pg_get_serial_sequence('{table}', 'id'), \
             COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"
        );
        // The table names are constants above.
        sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(&mut *tx)
            .await?;
    }

    // Compare counts before the caller commits; a mismatch rolls everything back.
    for Copied { table, rows } in &copied {
        let count_sql = format!("SELECT COUNT(*) FROM {table}");
        let source_rows: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(count_sql.clone()))
            .fetch_one(source)
            .await?;
        let target_rows: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(count_sql))
            .fetch_one(&mut *tx)
            .await?;
        if source_rows != *rows || target_rows != *rows {
            bail!(
                "{table}: the source has {source_rows} rows, {rows} were copied and the \
                 target has {target_rows}; nothing was committed"
            );
        }
    }
    Ok(copied)
}

/// Fails unless the target contains nothing but the lobby that its migrations created.
async fn ensure_empty(tx: &mut sqlx::PgConnection, url: &str) -> anyhow::Result<()> {
    let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(&mut *tx)
        .await?;
    let messages: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM messages")
        .fetch_one(&mut *tx)
        .await?;
    let rooms: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM rooms")
        .fetch_one(&mut *tx)
        .await?;
    if users > 0 || messages > 0 || rooms > 1 {
        bail!(
            "the PostgreSQL database {} already holds data ({users} users, {rooms} rooms, \
             {messages} messages); migrate into an empty database",
            redact(url)
        );
    }
    Ok(())
}

/// Copies every row of one table, in primary-key order, and returns how many.
async fn copy_table(
    source: &sqlx::SqlitePool,
    tx: &mut sqlx::PgConnection,
    table: &str,
    columns: &[(&str, Kind)],
) -> anyhow::Result<i64> {
    let names: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
    let list = names.join(", ");
    let placeholders: Vec<String> = (1..=names.len()).map(|i| format!("${i}")).collect();
    // Table and column names come from the constant list above.
    let select = format!("SELECT {list} FROM {table} ORDER BY 1, 2");
    let insert = format!(
        "INSERT INTO {table} ({list}) VALUES ({})",
        placeholders.join(", ")
    );

    let rows = sqlx::query(sqlx::AssertSqlSafe(select))
        .fetch_all(source)
        .await
        .with_context(|| format!("failed to read {table} from SQLite"))?;
    for row in &rows {
        let mut args = PgArguments::default();
        for (index, (name, kind)) in columns.iter().enumerate() {
            let added = match kind {
                Kind::Int => args.add(row.try_get::<Option<i64>, _>(index)?),
                Kind::Text => args.add(row.try_get::<Option<String>, _>(index)?),
            };
            added.map_err(|err| anyhow::anyhow!("failed to bind {table}.{name}: {err}"))?;
        }
        sqlx::query_with(sqlx::AssertSqlSafe(insert.clone()), args)
            .execute(&mut *tx)
            .await
            .with_context(|| format!("failed to insert into {table}"))?;
    }
    Ok(rows.len() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::{AccountKind, MessageKind};
    use crate::store::postgres::testing::{TestSchema, test_database_url};
    use crate::store::{MessageStore, NewMessage, NewUser, RoomStore, Store, UserStore};

    #[tokio::test]
    async fn copies_every_row_and_refuses_a_second_run() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("confab.db");
        let sqlite = SqliteStore::open(&path).await.expect("SQLite opens");
        let user = sqlite
            .create_user(NewUser {
                username: Some("alice"),
                username_key: Some("alice"),
                display_name: "Alice",
                kind: AccountKind::Registered,
                password_hash: Some("hash"),
                created_at: 1,
            })
            .await
            .expect("user stored");
        let lobby = sqlite
            .room_by_name_key("lobby")
            .await
            .expect("lobby read")
            .expect("lobby exists");
        for n in 0..30 {
            sqlite
                .append_message(NewMessage {
                    room_id: lobby.id,
                    kind: MessageKind::Text,
                    author_id: Some(user.id),
                    author_name: "Alice".into(),
                    body: format!("m{n}"),
                    target_id: None,
                    target_name: None,
                    client_msg_id: Some(format!("c{n}")),
                    created_at: 2,
                })
                .await
                .expect("message stored");
        }
        sqlite.close().await;

        let schema = TestSchema::create();
        let mut settings = PgSettings::new(&test_database_url());
        settings.schema = Some(schema.name.clone());
        let copied = migrate(&path, &settings).await.expect("migration succeeds");
        let messages = copied.iter().find(|c| c.table == "messages").unwrap();
        assert_eq!(messages.rows, 30);
        let users = copied.iter().find(|c| c.table == "users").unwrap();
        assert_eq!(users.rows, 1);

        let pg = schema.open().await;
        let room = pg
            .room_by_id(lobby.id)
            .await
            .unwrap()
            .expect("lobby copied");
        assert_eq!(room.last_seq.0, 30);
        let (page, _) = pg
            .history(lobby.id, crate::store::Page::Latest, 5)
            .await
            .unwrap();
        assert_eq!(page.last().map(|m| m.body.as_str()), Some("m29"));
        // New rows get ids after the copied ones, and seq continues.
        let next = pg
            .append_message(NewMessage {
                room_id: lobby.id,
                kind: MessageKind::Text,
                author_id: Some(user.id),
                author_name: "Alice".into(),
                body: "after".into(),
                target_id: None,
                target_name: None,
                client_msg_id: None,
                created_at: 3,
            })
            .await
            .expect("append after migration");
        assert_eq!(next.message.seq.0, 31);
        pg.close().await;

        let again = migrate(&path, &settings).await;
        let err = again.expect_err("a second run must fail");
        assert!(
            err.to_string().contains("already holds data"),
            "unexpected error: {err:#}"
        );
    }
}
