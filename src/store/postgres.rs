//! The PostgreSQL backend, for several nodes sharing one database. It runs the same SQL
//! text as SQLite (src/store/sql.rs); only the schema migrations differ.
//!
//! Per-room `seq` stays gap-free with writers on several nodes because `NEXT_SEQ` is an
//! `UPDATE ... RETURNING` on the room row: its row lock serialises the writers of one room
//! until commit, and a transaction that rolls back gives its number back.

use super::sql;
use super::*;
use crate::core::error::{ChatError, ErrorCode};
use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, Row, Transaction};
use std::str::FromStr;
use std::time::Duration;
use tracing::instrument;

/// How long a request waits for a free pooled connection, or for a new connection to
/// open, before it fails with `store_unavailable`.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// PostgreSQL implementation of [`Store`].
///
/// NOTE: most methods repeat `SqliteStore`'s around the shared SQL in `sql.rs`; a
/// generic implementation over both pools would remove the copy.
///
/// Calls that can fail with an ordinary rejection (a taken name, an already deleted
/// message) log their errors at debug level; the gateway logs real faults once.
pub struct PgStore {
    /// Connections shared by reads and writes; PostgreSQL runs them concurrently.
    pool: PgPool,
}

fn store_err(err: sqlx::Error) -> ChatError {
    ChatError::Store(err.into())
}

fn is_unique_violation(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .is_some_and(|e| e.is_unique_violation())
}

/// Options of a PostgreSQL store.
#[derive(Clone, Debug)]
pub struct PgSettings {
    /// A `postgres://` URL.
    pub url: String,
    /// Schema to create and use instead of the URL's default search path; tests use
    /// one schema per run.
    pub schema: Option<String>,
    /// Pooled connections per node.
    pub max_connections: u32,
}

impl PgSettings {
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            schema: None,
            max_connections: 10,
        }
    }
}

impl PgStore {
    /// Connects and applies pending migrations. Migrations take a PostgreSQL advisory
    /// lock, so nodes starting together apply them once.
    pub async fn open(settings: &PgSettings) -> anyhow::Result<Self> {
        let mut options = PgConnectOptions::from_str(&settings.url)
            .with_context(|| format!("invalid PostgreSQL URL {}", redact(&settings.url)))?;
        if let Some(schema) = &settings.schema {
            create_schema(&options, schema).await?;
            options = options.options([("search_path", schema.as_str())]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections.max(1))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .with_context(|| format!("failed to connect to {}", redact(&settings.url)))?;
        sqlx::migrate!("./migrations/postgres")
            .run(&pool)
            .await
            .context("failed to apply PostgreSQL migrations")?;
        Ok(Self { pool })
    }

    /// Returns the pool, for the store migration, which copies rows table by table.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Finds the message an author already sent with the same `client_msg_id`.
    async fn earlier_send(&self, message: &NewMessage) -> ChatResult<Option<Message>> {
        let (Some(author), Some(client_id)) = (message.author_id, &message.client_msg_id) else {
            return Ok(None);
        };
        let row = sqlx::query(sql::MESSAGE_BY_CLIENT_ID)
            .bind(author.0)
            .bind(client_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_err)?;
        row.as_ref()
            .map(message_from_row)
            .transpose()
            .map_err(store_err)
    }
}

/// Creates `schema` if missing, on a connection of its own.
async fn create_schema(options: &PgConnectOptions, schema: &str) -> anyhow::Result<()> {
    use sqlx::{ConnectOptions, Connection};
    let mut conn = options
        .connect()
        .await
        .context("failed to connect to PostgreSQL")?;
    let statement = format!("CREATE SCHEMA IF NOT EXISTS {}", quote_ident(schema));
    // The name is quoted as an identifier, so it cannot end the statement early.
    sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
        .execute(&mut conn)
        .await
        .with_context(|| format!("failed to create schema {schema}"))?;
    conn.close().await.ok();
    Ok(())
}

/// Quotes an SQL identifier, doubling embedded quotes.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Removes the password from a URL for error messages and logs.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

fn user_from_row(row: &PgRow) -> Result<UserRow, sqlx::Error> {
    let kind: String = row.try_get("kind")?;
    Ok(UserRow {
        id: UserId(row.try_get("id")?),
        username: row.try_get("username")?,
        display_name: row.try_get("display_name")?,
        kind: if kind == "guest" {
            AccountKind::Guest
        } else {
            AccountKind::Registered
        },
        password_hash: row.try_get("password_hash")?,
        avatar: row.try_get("avatar")?,
        created_at: row.try_get("created_at")?,
    })
}

fn session_and_user_from_row(row: &PgRow) -> Result<(SessionRow, UserRow), sqlx::Error> {
    let user = user_from_row(row)?;
    let session = SessionRow {
        id: SessionId(row.try_get("session_id")?),
        user_id: user.id,
        csrf_token: row.try_get("csrf_token")?,
        created_at: row.try_get("session_created_at")?,
        expires_at: row.try_get("expires_at")?,
    };
    Ok((session, user))
}

fn room_from_row(row: &PgRow) -> Result<Room, sqlx::Error> {
    let visibility: String = row.try_get("visibility")?;
    Ok(Room {
        id: RoomId(row.try_get("id")?),
        name: row.try_get("name")?,
        topic: row.try_get("topic")?,
        visibility: Visibility::parse(&visibility).unwrap_or(Visibility::Private),
        owner_id: row.try_get::<Option<i64>, _>("owner_id")?.map(UserId),
        last_seq: Seq(row.try_get("last_seq")?),
        last_rev: row.try_get("last_rev")?,
        created_at: row.try_get("created_at")?,
        member_count: row.try_get("member_count")?,
        moderated: row.try_get::<i64, _>("moderated")? != 0,
        topic_locked: row.try_get::<i64, _>("topic_locked")? != 0,
    })
}

fn role_from_str(s: &str) -> Role {
    // The schema's CHECK constraint admits only known roles.
    Role::parse(s).unwrap_or(Role::Guest)
}

fn message_from_row(row: &PgRow) -> Result<Message, sqlx::Error> {
    let kind: String = row.try_get("kind")?;
    Ok(Message {
        id: MessageId(row.try_get("id")?),
        room_id: RoomId(row.try_get("room_id")?),
        seq: Seq(row.try_get("seq")?),
        rev: row.try_get("rev")?,
        kind: MessageKind::parse(&kind).unwrap_or(MessageKind::Text),
        author_id: row.try_get::<Option<i64>, _>("author_id")?.map(UserId),
        author_name: row.try_get("author_name")?,
        body: row.try_get("body")?,
        target_id: row.try_get::<Option<i64>, _>("target_id")?.map(UserId),
        target_name: row.try_get("target_name")?,
        client_msg_id: row.try_get("client_msg_id")?,
        created_at: row.try_get("created_at")?,
        edited_at: row.try_get("edited_at")?,
        deleted_at: row.try_get("deleted_at")?,
        deleted_by: row.try_get::<Option<i64>, _>("deleted_by")?.map(UserId),
        author_account: None,
        client_tags: None,
    })
}

/// Decodes up to `limit` message rows read with one extra row, which shows whether
/// another page exists.
fn page_of(rows: &[PgRow], limit: i64) -> ChatResult<(Vec<Message>, bool)> {
    let has_more = rows.len() as i64 > limit;
    let messages = rows
        .iter()
        .take(limit as usize)
        .map(message_from_row)
        .collect::<Result<Vec<_>, _>>()
        .map_err(store_err)?;
    Ok((messages, has_more))
}

/// Takes the next revision of a live message's room inside an open transaction; a deleted
/// or missing message is `MessageDeleted`.
async fn next_rev_for(tx: &mut Transaction<'_, Postgres>, id: MessageId) -> ChatResult<i64> {
    let rev: Option<i64> = sqlx::query_scalar(sql::NEXT_REV_FOR_MESSAGE)
        .bind(id.0)
        .fetch_optional(&mut **tx)
        .await
        .map_err(store_err)?;
    rev.ok_or_else(|| {
        ChatError::new(
            ErrorCode::MessageDeleted,
            format!("message {id} is deleted or missing"),
        )
    })
}

/// Appends a message inside an open transaction: takes the room's next `seq` and inserts.
async fn append_in(
    tx: &mut Transaction<'_, Postgres>,
    m: &NewMessage,
) -> Result<Message, sqlx::Error> {
    let (seq, rev): (i64, i64) = sqlx::query_as(sql::NEXT_SEQ)
        .bind(m.room_id.0)
        .fetch_one(&mut **tx)
        .await?;
    let id: i64 = sqlx::query_scalar(sql::INSERT_MESSAGE)
        .bind(m.room_id.0)
        .bind(seq)
        .bind(rev)
        .bind(m.kind.as_str())
        .bind(m.author_id.map(|u| u.0))
        .bind(&m.author_name)
        .bind(&m.body)
        .bind(m.target_id.map(|u| u.0))
        .bind(&m.target_name)
        .bind(&m.client_msg_id)
        .bind(m.created_at)
        .fetch_one(&mut **tx)
        .await?;
    Ok(Message {
        id: MessageId(id),
        room_id: m.room_id,
        seq: Seq(seq),
        rev,
        kind: m.kind,
        author_id: m.author_id,
        author_name: m.author_name.clone(),
        body: m.body.clone(),
        target_id: m.target_id,
        target_name: m.target_name.clone(),
        client_msg_id: m.client_msg_id.clone(),
        created_at: m.created_at,
        edited_at: None,
        deleted_at: None,
        deleted_by: None,
        author_account: None,
        client_tags: None,
    })
}

#[async_trait]
impl UserStore for PgStore {
    #[instrument(skip_all, err(level = "debug"), fields(kind = ?user.kind))]
    async fn create_user(&self, user: NewUser<'_>) -> ChatResult<UserRow> {
        let kind = match user.kind {
            AccountKind::Registered => "registered",
            AccountKind::Guest => "guest",
        };
        let result = sqlx::query(sql::INSERT_USER)
            .bind(user.username)
            .bind(user.username_key)
            .bind(user.display_name)
            .bind(kind)
            .bind(user.password_hash)
            .bind(user.created_at)
            .fetch_one(&self.pool)
            .await;
        match result {
            Ok(row) => user_from_row(&row).map_err(store_err),
            Err(err) if is_unique_violation(&err) => Err(ChatError::new(
                ErrorCode::UsernameTaken,
                format!("username {:?} is taken", user.username.unwrap_or_default()),
            )),
            Err(err) => Err(store_err(err)),
        }
    }

    #[instrument(skip_all, err, fields(user_id = %id))]
    async fn user_by_id(&self, id: UserId) -> ChatResult<Option<UserRow>> {
        let row = sqlx::query(sql::USER_BY_ID)
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_err)?;
        row.as_ref()
            .map(user_from_row)
            .transpose()
            .map_err(store_err)
    }

    #[instrument(skip_all, err)]
    async fn user_by_username_key(&self, key: &str) -> ChatResult<Option<UserRow>> {
        let row = sqlx::query(sql::USER_BY_KEY)
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_err)?;
        row.as_ref()
            .map(user_from_row)
            .transpose()
            .map_err(store_err)
    }

    #[instrument(skip_all, err, fields(user_id = %id))]
    async fn set_display_name(&self, id: UserId, name: &str) -> ChatResult<()> {
        sqlx::query(sql::SET_DISPLAY_NAME)
            .bind(id.0)
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(store_err)?;
        Ok(())
    }

    #[instrument(skip_all, err, fields(user_id = %id))]
    async fn set_password_hash(&self, id: UserId, hash: &str) -> ChatResult<()> {
        sqlx::query(sql::SET_PASSWORD_HASH)
            .bind(id.0)
            .bind(hash)
            .execute(&self.pool)
            .await
            .map_err(store_err)?;
        Ok(())
    }

    #[instrument(skip_all, err)]
    async fn avatar_in_use(&self, file: &str) -> ChatResult<bool> {
        let found = sqlx::query(sql::AVATAR_IN_USE)
            .bind(file)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_err)?;
        Ok(found.is_some())
    }

    #[instrument(skip_all, err)]
    async fn delete_orphan_guests(&self, before: Millis) -> ChatResult<u64> {
        let done = sqlx::query(sql::DELETE_ORPHAN_GUESTS)
            .bind(before)
            .execute(&self.pool)
            .await
            .map_err(store_err)?;
        Ok(done.rows_affected())
    }

    #[instrument(skip_all, err, fields(user_id = %id))]
    async fn set_avatar(&self, id: UserId, avatar: Option<&str>) -> ChatResult<()> {
        sqlx::query(sql::SET_AVATAR)
            .bind(id.0)
            .bind(avatar)
            .execute(&self.pool)
            .await
            .map_err(store_err)?;
        Ok(())
    }
}

#[async_trait]
impl SessionStore for PgStore {
    #[instrument(skip_all, err, fields(user_id = %user_id))]
    async fn create_session(
        &self,
        user_id: UserId,
        token_hash: &str,
        csrf_token: &str,
        now: Millis,
        expires_at: Millis,
    ) -> ChatResult<SessionRow> {
        let id: i64 = sqlx::query_scalar(sql::INSERT_SESSION)
            .bind(user_id.0)
            .bind(token_hash)
            .bind(csrf_token)
            .bind(now)
            .bind(expires_at)
            .fetch_one(&self.pool)
            .await
            .map_err(store_err)?;
        Ok(SessionRow {
            id: SessionId(id),
            user_id,
            csrf_token: csrf_token.to_owned(),
            created_at: now,
            expires_at,
        })
    }

    #[instrument(skip_all, err)]
    async fn session_and_user_by_token_hash(
        &self,
        hash: &str,
        now: Millis,
    ) -> ChatResult<Option<(SessionRow, UserRow)>> {
        let row = sqlx::query(sql::SESSION_AND_USER_BY_HASH)
            .bind(hash)
            .bind(now)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_err)?;
        row.as_ref()
            .map(session_and_user_from_row)
            .transpose()
            .map_err(store_err)
    }

    #[instrument(skip_all, err, fields(session_id = %id))]
    async fn delete_session(&self, id: SessionId) -> ChatResult<()> {
        sqlx::query(sql::DELETE_SESSION)
            .bind(id.0)
            .execute(&self.pool)
            .await
            .map_err(store_err)?;
        Ok(())
    }

    #[instrument(skip_all, err, fields(user_id = %user_id))]
    async fn delete_user_sessions(
        &self,
        user_id: UserId,
        keep: Option<SessionId>,
    ) -> ChatResult<Vec<SessionId>> {
        let ids: Vec<i64> = sqlx::query_scalar(sql::DELETE_USER_SESSIONS)
            .bind(user_id.0)
            .bind(keep.map_or(-1, |s| s.0))
            .fetch_all(&self.pool)
            .await
            .map_err(store_err)?;
        Ok(ids.into_iter().map(SessionId).collect())
    }

    #[instrument(skip_all, err)]
    async fn delete_expired_sessions(&self, now: Millis) -> ChatResult<Vec<SessionId>> {
        let ids: Vec<i64> = sqlx::query_scalar(sql::DELETE_EXPIRED_SESSIONS)
            .bind(now)
            .fetch_all(&self.pool)
            .await
            .map_err(store_err)?;
        Ok(ids.into_iter().map(SessionId).collect())
    }
}

#[async_trait]
impl RoomStore for PgStore {
    #[instrument(skip_all, err(level = "debug"), fields(visibility = room.visibility.as_str()))]
    async fn create_room(&self, room: NewRoom<'_>) -> ChatResult<Room> {
        let mut tx = self.pool.begin().await.map_err(store_err)?;
        let inserted = sqlx::query_scalar::<_, i64>(sql::INSERT_ROOM)
            .bind(room.name)
            .bind(room.name_key)
            .bind(room.topic)
            .bind(room.visibility.as_str())
            .bind(room.owner_id.map(|u| u.0))
            .bind(room.created_at)
            .fetch_one(&mut *tx)
            .await;
        let id = match inserted {
            Ok(id) => id,
            Err(err) if is_unique_violation(&err) => {
                return Err(ChatError::new(
                    ErrorCode::RoomNameTaken,
                    format!("room {:?} exists", room.name),
                ));
            }
            Err(err) => return Err(store_err(err)),
        };
        for (member, role) in room.members {
            sqlx::query(sql::INSERT_MEMBER)
                .bind(id)
                .bind(member.0)
                .bind(role.as_str())
                .bind(room.created_at)
                .execute(&mut *tx)
                .await
                .map_err(store_err)?;
        }
        let row = sqlx::query(sql::ROOM_BY_ID)
            .bind(id)
            .fetch_one(&mut *tx)
            .await
            .map_err(store_err)?;
        let created = room_from_row(&row).map_err(store_err)?;
        tx.commit().await.map_err(store_err)?;
        Ok(created)
    }

    #[instrument(skip_all, err, fields(room_id = %id))]
    async fn room_by_id(&self, id: RoomId) -> ChatResult<Option<Room>> {
        let row = sqlx::query(sql::ROOM_BY_ID)
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_err)?;
        row.as_ref()
            .map(room_from_row)
            .transpose()
            .map_err(store_err)
    }

    #[instrument(skip_all, err)]
    async fn room_by_name_key(&self, key: &str) -> ChatResult<Option<Room>> {
        let row = sqlx::query(sql::ROOM_BY_KEY)
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_err)?;
        row.as_ref()
            .map(room_from_row)
            .transpose()
            .map_err(store_err)
    }

    #[instrument(skip_all, err)]
    async fn public_rooms(&self, limit: i64) -> ChatResult<Vec<Room>> {
        let rows = sqlx::query(sql::PUBLIC_ROOMS)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(store_err)?;
        rows.iter()
            .map(room_from_row)
            .collect::<Result<_, _>>()
            .map_err(store_err)
    }

    #[instrument(skip_all, err, fields(user_id = %user_id))]
    async fn user_rooms(&self, user_id: UserId) -> ChatResult<Vec<(Room, Role)>> {
        let rows = sqlx::query(sql::USER_ROOMS)
            .bind(user_id.0)
            .fetch_all(&self.pool)
            .await
            .map_err(store_err)?;
        rows.iter()
            .map(|row| {
                let role: String = row.try_get("role")?;
                Ok((room_from_row(row)?, role_from_str(&role)))
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(store_err)
    }

    #[instrument(skip_all, err, fields(room_id = %room_id, user_id = %user_id))]
    async fn role_of(&self, room_id: RoomId, user_id: UserId) -> ChatResult<Option<Role>> {
        let role: Option<String> = sqlx::query_scalar(sql::ROLE_OF)
            .bind(room_id.0)
            .bind(user_id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_err)?;
        Ok(role.as_deref().map(role_from_str))
    }

    #[instrument(skip_all, err, fields(room_id = %room_id, user_id = %user_id))]
    async fn add_member(
        &self,
        room_id: RoomId,
        user_id: UserId,
        role: Role,
        event: NewMessage,
    ) -> ChatResult<Option<Message>> {
        let mut tx = self.pool.begin().await.map_err(store_err)?;
        let added = sqlx::query(sql::INSERT_MEMBER)
            .bind(room_id.0)
            .bind(user_id.0)
            .bind(role.as_str())
            .bind(event.created_at)
            .execute(&mut *tx)
            .await
            .map_err(store_err)?
            .rows_affected();
        if added == 0 {
            return Ok(None);
        }
        sqlx::query(sql::DELETE_INVITE)
            .bind(room_id.0)
            .bind(user_id.0)
            .execute(&mut *tx)
            .await
            .map_err(store_err)?;
        let message = append_in(&mut tx, &event).await.map_err(store_err)?;
        tx.commit().await.map_err(store_err)?;
        Ok(Some(message))
    }

    #[instrument(skip_all, err, fields(room_id = %room_id, user_id = %user_id))]
    async fn remove_member(
        &self,
        room_id: RoomId,
        user_id: UserId,
        event: NewMessage,
    ) -> ChatResult<Option<Message>> {
        let mut tx = self.pool.begin().await.map_err(store_err)?;
        sqlx::query(sql::DELETE_INVITE)
            .bind(room_id.0)
            .bind(user_id.0)
            .execute(&mut *tx)
            .await
            .map_err(store_err)?;
        let removed = sqlx::query(sql::DELETE_MEMBER)
            .bind(room_id.0)
            .bind(user_id.0)
            .execute(&mut *tx)
            .await
            .map_err(store_err)?
            .rows_affected();
        if removed == 0 {
            tx.commit().await.map_err(store_err)?;
            return Ok(None);
        }
        let message = append_in(&mut tx, &event).await.map_err(store_err)?;
        tx.commit().await.map_err(store_err)?;
        Ok(Some(message))
    }

    #[instrument(skip_all, err, fields(room_id = %room_id, user_id = %user_id))]
    async fn set_role(&self, room_id: RoomId, user_id: UserId, role: Role) -> ChatResult<()> {
        sqlx::query(sql::SET_ROLE)
            .bind(room_id.0)
            .bind(user_id.0)
            .bind(role.as_str())
            .execute(&self.pool)
            .await
            .map_err(store_err)?;
        Ok(())
    }

    #[instrument(skip_all, err, fields(room_id = %room_id))]
    async fn set_topic(
        &self,
        room_id: RoomId,
        topic: &str,
        event: NewMessage,
    ) -> ChatResult<Message> {
        let mut tx = self.pool.begin().await.map_err(store_err)?;
        sqlx::query(sql::SET_TOPIC)
            .bind(room_id.0)
            .bind(topic)
            .execute(&mut *tx)
            .await
            .map_err(store_err)?;
        let message = append_in(&mut tx, &event).await.map_err(store_err)?;
        tx.commit().await.map_err(store_err)?;
        Ok(message)
    }

    #[instrument(skip_all, err, fields(room_id = %room_id))]
    async fn members(&self, room_id: RoomId) -> ChatResult<Vec<MemberRow>> {
        let rows = sqlx::query(sql::MEMBERS)
            .bind(room_id.0)
            .fetch_all(&self.pool)
            .await
            .map_err(store_err)?;
        rows.iter()
            .map(|row| {
                let role: String = row.try_get("role")?;
                Ok(MemberRow {
                    user: user_from_row(row)?,
                    role: role_from_str(&role),
                    joined_at: row.try_get("joined_at")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(store_err)
    }

    #[instrument(skip_all, err, fields(room_id = %room_id, user_id = %user_id))]
    async fn add_invite(
        &self,
        room_id: RoomId,
        user_id: UserId,
        by: UserId,
        now: Millis,
    ) -> ChatResult<bool> {
        let added = sqlx::query(sql::INSERT_INVITE)
            .bind(room_id.0)
            .bind(user_id.0)
            .bind(by.0)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(store_err)?
            .rows_affected();
        Ok(added > 0)
    }

    #[instrument(skip_all, err, fields(room_id = %room_id, user_id = %user_id))]
    async fn has_invite(&self, room_id: RoomId, user_id: UserId) -> ChatResult<bool> {
        let found = sqlx::query(sql::HAS_INVITE)
            .bind(room_id.0)
            .bind(user_id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_err)?;
        Ok(found.is_some())
    }

    #[instrument(skip_all, err, fields(room_id = %ban.room_id, user_id = %ban.user_id))]
    async fn add_ban(&self, ban: NewBan<'_>, event: NewMessage) -> ChatResult<Option<Message>> {
        let mut tx = self.pool.begin().await.map_err(store_err)?;
        let added = sqlx::query(sql::INSERT_BAN)
            .bind(ban.room_id.0)
            .bind(ban.user_id.0)
            .bind(ban.banned_by.0)
            .bind(ban.reason)
            .bind(ban.created_at)
            .execute(&mut *tx)
            .await
            .map_err(store_err)?
            .rows_affected();
        if added == 0 {
            tx.commit().await.map_err(store_err)?;
            return Ok(None);
        }
        for statement in [sql::DELETE_INVITE, sql::DELETE_MEMBER] {
            sqlx::query(statement)
                .bind(ban.room_id.0)
                .bind(ban.user_id.0)
                .execute(&mut *tx)
                .await
                .map_err(store_err)?;
        }
        let message = append_in(&mut tx, &event).await.map_err(store_err)?;
        tx.commit().await.map_err(store_err)?;
        Ok(Some(message))
    }

    #[instrument(skip_all, err, fields(room_id = %room_id, user_id = %user_id))]
    async fn remove_ban(
        &self,
        room_id: RoomId,
        user_id: UserId,
        event: NewMessage,
    ) -> ChatResult<Option<Message>> {
        let mut tx = self.pool.begin().await.map_err(store_err)?;
        let removed = sqlx::query(sql::DELETE_BAN)
            .bind(room_id.0)
            .bind(user_id.0)
            .execute(&mut *tx)
            .await
            .map_err(store_err)?
            .rows_affected();
        if removed == 0 {
            tx.commit().await.map_err(store_err)?;
            return Ok(None);
        }
        let message = append_in(&mut tx, &event).await.map_err(store_err)?;
        tx.commit().await.map_err(store_err)?;
        Ok(Some(message))
    }

    #[instrument(skip_all, err, fields(room_id = %room_id, user_id = %user_id))]
    async fn is_banned(&self, room_id: RoomId, user_id: UserId) -> ChatResult<bool> {
        let found = sqlx::query(sql::IS_BANNED)
            .bind(room_id.0)
            .bind(user_id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_err)?;
        Ok(found.is_some())
    }

    #[instrument(skip_all, err, fields(room_id = %room_id))]
    async fn bans(&self, room_id: RoomId) -> ChatResult<Vec<BanRow>> {
        let rows = sqlx::query(sql::BANS)
            .bind(room_id.0)
            .fetch_all(&self.pool)
            .await
            .map_err(store_err)?;
        rows.iter()
            .map(|row| {
                Ok(BanRow {
                    room_id: RoomId(row.try_get("room_id")?),
                    user: user_from_row(row)?,
                    banned_by: row.try_get::<Option<i64>, _>("banned_by")?.map(UserId),
                    banned_by_name: row.try_get("banned_by_name")?,
                    reason: row.try_get("reason")?,
                    created_at: row.try_get("banned_at")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(store_err)
    }

    #[instrument(skip_all, err, fields(room_id = %room_id))]
    async fn set_room_settings(
        &self,
        room_id: RoomId,
        moderated: bool,
        topic_locked: bool,
        event: NewMessage,
    ) -> ChatResult<Message> {
        let mut tx = self.pool.begin().await.map_err(store_err)?;
        sqlx::query(sql::SET_ROOM_SETTINGS)
            .bind(room_id.0)
            .bind(i64::from(moderated))
            .bind(i64::from(topic_locked))
            .execute(&mut *tx)
            .await
            .map_err(store_err)?;
        let message = append_in(&mut tx, &event).await.map_err(store_err)?;
        tx.commit().await.map_err(store_err)?;
        Ok(message)
    }
}
#[async_trait]
impl MessageStore for PgStore {
    #[instrument(skip_all, err, fields(room_id = %message.room_id, kind = message.kind.as_str()))]
    async fn append_message(&self, message: NewMessage) -> ChatResult<Appended> {
        if let Some(earlier) = self.earlier_send(&message).await? {
            return Ok(Appended {
                message: earlier,
                duplicate: true,
            });
        }

        // Two nodes can pass the check above with the same client_msg_id at once. The
        // unique index rejects the second insert, whose transaction then rolls back
        // together with its `seq`, and the resend returns the first message.
        let mut tx = self.pool.begin().await.map_err(store_err)?;
        let stored = match append_in(&mut tx, &message).await {
            Ok(stored) => stored,
            Err(err) if is_unique_violation(&err) => {
                drop(tx);
                if let Some(earlier) = self.earlier_send(&message).await? {
                    return Ok(Appended {
                        message: earlier,
                        duplicate: true,
                    });
                }
                return Err(store_err(err));
            }
            Err(err) => return Err(store_err(err)),
        };
        tx.commit().await.map_err(store_err)?;
        Ok(Appended {
            message: stored,
            duplicate: false,
        })
    }

    #[instrument(skip_all, err, fields(message_id = %id))]
    async fn message_by_id(&self, id: MessageId) -> ChatResult<Option<Message>> {
        let row = sqlx::query(sql::MESSAGE_BY_ID)
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_err)?;
        row.as_ref()
            .map(message_from_row)
            .transpose()
            .map_err(store_err)
    }

    #[instrument(skip_all, err(level = "debug"), fields(message_id = %id))]
    async fn edit_message(&self, id: MessageId, body: &str, now: Millis) -> ChatResult<Message> {
        let mut tx = self.pool.begin().await.map_err(store_err)?;
        let rev = next_rev_for(&mut tx, id).await?;
        let row = sqlx::query(sql::EDIT_MESSAGE)
            .bind(id.0)
            .bind(body)
            .bind(now)
            .bind(rev)
            .fetch_one(&mut *tx)
            .await
            .map_err(store_err)?;
        let message = message_from_row(&row).map_err(store_err)?;
        tx.commit().await.map_err(store_err)?;
        Ok(message)
    }

    #[instrument(skip_all, err(level = "debug"), fields(message_id = %id))]
    async fn delete_message(&self, id: MessageId, by: UserId, now: Millis) -> ChatResult<Message> {
        let mut tx = self.pool.begin().await.map_err(store_err)?;
        let rev = next_rev_for(&mut tx, id).await?;
        let row = sqlx::query(sql::DELETE_MESSAGE)
            .bind(id.0)
            .bind(by.0)
            .bind(now)
            .bind(rev)
            .fetch_one(&mut *tx)
            .await
            .map_err(store_err)?;
        let message = message_from_row(&row).map_err(store_err)?;
        tx.commit().await.map_err(store_err)?;
        Ok(message)
    }

    #[instrument(skip_all, err, fields(room_id = %room_id, after, limit))]
    async fn changes(
        &self,
        room_id: RoomId,
        after: i64,
        limit: i64,
    ) -> ChatResult<(Vec<Message>, bool)> {
        let rows = sqlx::query(sql::CHANGES_AFTER)
            .bind(room_id.0)
            .bind(after)
            .bind(limit + 1)
            .fetch_all(&self.pool)
            .await
            .map_err(store_err)?;
        page_of(&rows, limit)
    }

    #[instrument(skip_all, err, fields(room_id = %room_id))]
    async fn room_rev(&self, room_id: RoomId) -> ChatResult<i64> {
        let rev: Option<i64> = sqlx::query_scalar(sql::ROOM_LAST_REV)
            .bind(room_id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_err)?;
        rev.ok_or_else(|| ChatError::new(ErrorCode::RoomNotFound, format!("no room {room_id}")))
    }

    #[instrument(skip_all, err, fields(room_id = %room_id, page = ?page, limit))]
    async fn history(
        &self,
        room_id: RoomId,
        page: Page,
        limit: i64,
    ) -> ChatResult<(Vec<Message>, bool)> {
        // One extra row shows whether another page exists.
        let fetch = limit + 1;
        let rows = match page {
            Page::Latest => {
                sqlx::query(sql::HISTORY_LATEST)
                    .bind(room_id.0)
                    .bind(fetch)
                    .fetch_all(&self.pool)
                    .await
            }
            Page::Before(seq) => {
                sqlx::query(sql::HISTORY_BEFORE)
                    .bind(room_id.0)
                    .bind(seq.0)
                    .bind(fetch)
                    .fetch_all(&self.pool)
                    .await
            }
            Page::After(seq) => {
                sqlx::query(sql::HISTORY_AFTER)
                    .bind(room_id.0)
                    .bind(seq.0)
                    .bind(fetch)
                    .fetch_all(&self.pool)
                    .await
            }
        }
        .map_err(store_err)?;

        let (mut messages, has_more) = page_of(&rows, limit)?;
        // Latest and Before pages were read newest first; pages go out oldest first.
        if !matches!(page, Page::After(_)) {
            messages.reverse();
        }
        Ok((messages, has_more))
    }

    async fn message_count(&self) -> ChatResult<i64> {
        sqlx::query_scalar(sql::MESSAGE_COUNT)
            .fetch_one(&self.pool)
            .await
            .map_err(store_err)
    }
}

#[async_trait]
impl Store for PgStore {
    async fn ping(&self) -> ChatResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(store_err)?;
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

/// PostgreSQL schemas for tests, one per test, dropped afterwards. The tests use
/// `CONFAB_TEST_DATABASE_URL`, by default the local `test` database, and fail, naming the
/// URL, when it is unreachable.
#[cfg(test)]
pub mod testing {
    use super::{PgSettings, PgStore};
    use std::sync::atomic::{AtomicU32, Ordering};

    const DEFAULT_TEST_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

    /// Returns the PostgreSQL URL the tests use.
    pub fn test_database_url() -> String {
        std::env::var("CONFAB_TEST_DATABASE_URL")
            .unwrap_or_else(|_| DEFAULT_TEST_DATABASE_URL.to_owned())
    }

    /// A PostgreSQL schema that lives as long as one test.
    pub struct TestSchema {
        pub name: String,
    }

    impl TestSchema {
        pub fn create() -> Self {
            static NEXT: AtomicU32 = AtomicU32::new(0);
            let name = format!(
                "confab_test_{}_{}_{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed),
                rand::random::<u32>()
            );
            Self { name }
        }

        /// Opens a store on this schema; a second call on the same schema acts as a
        /// second node sharing the database.
        pub async fn open(&self) -> PgStore {
            let url = test_database_url();
            let mut settings = PgSettings::new(&url);
            settings.schema = Some(self.name.clone());
            settings.max_connections = 4;
            match PgStore::open(&settings).await {
                Ok(store) => store,
                Err(err) => panic!(
                    "PostgreSQL for the tests is unavailable at {url} ({err:#}); \
                     start it or set CONFAB_TEST_DATABASE_URL"
                ),
            }
        }
    }

    impl Drop for TestSchema {
        /// Drops the schema from a thread of its own, because the test's runtime may be
        /// shutting down.
        fn drop(&mut self) {
            let name = self.name.clone();
            let dropped = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                runtime.block_on(async {
                    use sqlx::Connection;
                    let mut conn = sqlx::PgConnection::connect(&test_database_url()).await?;
                    // A lock left by a failed test must not hang the run.
                    let statement = format!(
                        "SET lock_timeout = '10s'; DROP SCHEMA IF EXISTS {} CASCADE",
                        super::quote_ident(&name)
                    );
                    // The name is quoted as an identifier.
                    sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
                        .execute(&mut conn)
                        .await?;
                    conn.close().await?;
                    anyhow::Ok(())
                })
            })
            .join();
            if !matches!(dropped, Ok(Ok(()))) {
                eprintln!("failed to drop test schema {}", self.name);
            }
        }
    }
}
