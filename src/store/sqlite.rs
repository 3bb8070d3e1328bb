//! The embedded SQLite backend: one file in the data directory, WAL mode, one writer
//! connection and a small pool of readers. SQLite allows one writer at a time anyway, so a
//! pool of one queues writers in Rust instead of spinning on `SQLITE_BUSY`.
//!
//! Group commit: new messages go through one task that appends every message waiting
//! at that moment in a single transaction, so one WAL fsync covers all of them. Each
//! caller gets its acknowledgement only after that commit. While one commit syncs, the
//! next messages queue up and form the next group, so a lone message waits for no timer.

use super::sql;
use super::*;
use crate::core::error::{ChatError, ErrorCode};
use anyhow::Context;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};
use std::path::Path;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tracing::instrument;

/// Reader connections. In WAL mode a read does not wait for the writer's transaction.
const READERS: u32 = 4;
/// How long a connection waits on a lock held by another process before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Most messages appended in one group-commit transaction.
const GROUP_COMMIT_MAX: usize = 256;
/// Appends queued for the group-commit task before callers wait to queue more.
const APPEND_QUEUE: usize = 4096;

/// SQLite implementation of [`Store`].
///
/// Calls that can fail with an ordinary rejection (a taken name, an already deleted
/// message) log their errors at debug level; the gateway logs real faults once.
pub struct SqliteStore {
    /// The only connection that writes; every transaction goes through it in turn.
    writer: SqlitePool,
    /// Read-only connections for history and lookups.
    reader: SqlitePool,
    /// Queue of the group-commit task, which owns the receiving end and ends when the
    /// store is dropped.
    appends: mpsc::Sender<AppendRequest>,
}

/// A message waiting for the group-commit task, and where its result goes.
struct AppendRequest {
    message: NewMessage,
    reply: oneshot::Sender<ChatResult<Appended>>,
}

fn store_err(err: sqlx::Error) -> ChatError {
    ChatError::Store(err.into())
}

fn is_unique_violation(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .is_some_and(|e| e.is_unique_violation())
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies pending migrations.
    pub async fn open(path: &Path) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL syncs the WAL on every commit, so an acknowledged message survives
            // power loss as well as a killed process.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);

        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await
            .with_context(|| format!("failed to open SQLite database {}", path.display()))?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&writer)
            .await
            .context("failed to apply SQLite migrations")?;

        let reader = SqlitePoolOptions::new()
            .max_connections(READERS)
            .connect_with(options.read_only(true))
            .await
            .context("failed to open SQLite reader connections")?;

        let (appends, queue) = mpsc::channel(APPEND_QUEUE);
        tokio::spawn(group_commit(writer.clone(), queue));
        Ok(Self {
            writer,
            reader,
            appends,
        })
    }
}

/// Commits queued appends in groups until every sender is gone.
async fn group_commit(writer: SqlitePool, mut queue: mpsc::Receiver<AppendRequest>) {
    let mut batch = Vec::with_capacity(GROUP_COMMIT_MAX);
    while queue.recv_many(&mut batch, GROUP_COMMIT_MAX).await > 0 {
        commit_batch(&writer, &mut batch).await;
    }
}

/// Appends every message of `batch` in one transaction, then replies to each caller.
///
/// Each message runs inside its own savepoint, so one that fails (for example, its room
/// was deleted) is rolled back alone and the others still commit. If the commit itself
/// fails, every caller gets the error and nothing was stored.
async fn commit_batch(writer: &SqlitePool, batch: &mut Vec<AppendRequest>) {
    let mut results = Vec::with_capacity(batch.len());
    let committed: Result<(), sqlx::Error> = async {
        let mut tx = writer.begin().await?;
        for request in batch.iter() {
            sqlx::query("SAVEPOINT append").execute(&mut *tx).await?;
            let result = append_one(&mut tx, &request.message).await;
            if result.is_err() {
                sqlx::query("ROLLBACK TO append").execute(&mut *tx).await?;
            }
            sqlx::query("RELEASE append").execute(&mut *tx).await?;
            results.push(result);
        }
        tx.commit().await
    }
    .await;

    match committed {
        Ok(()) => {
            for (request, result) in batch.drain(..).zip(results) {
                // A caller that stopped waiting still has its message stored, as it
                // would if it had been cancelled during a single commit.
                let _ = request.reply.send(result.map_err(store_err));
            }
        }
        Err(err) => {
            tracing::error!(cause = %err, messages = batch.len(), "group commit failed");
            for request in batch.drain(..) {
                let _ = request.reply.send(Err(ChatError::Store(anyhow::anyhow!(
                    "group commit of new messages failed: {err}"
                ))));
            }
        }
    }
}

/// Appends one message inside an open transaction, or returns the stored message with
/// `duplicate` set when its author already used its `client_msg_id`. The check runs in
/// the writer's transaction, so it cannot race an insert, including one earlier in the
/// same group.
async fn append_one(
    tx: &mut Transaction<'_, Sqlite>,
    message: &NewMessage,
) -> Result<Appended, sqlx::Error> {
    if let (Some(author), Some(client_id)) = (message.author_id, &message.client_msg_id) {
        let earlier = sqlx::query(sql::MESSAGE_BY_CLIENT_ID)
            .bind(author.0)
            .bind(client_id)
            .fetch_optional(&mut **tx)
            .await?;
        if let Some(row) = earlier {
            return Ok(Appended {
                message: message_from_row(&row)?,
                duplicate: true,
            });
        }
    }
    Ok(Appended {
        message: append_in(tx, message).await?,
        duplicate: false,
    })
}

fn user_from_row(row: &SqliteRow) -> Result<UserRow, sqlx::Error> {
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

fn session_and_user_from_row(row: &SqliteRow) -> Result<(SessionRow, UserRow), sqlx::Error> {
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

fn room_from_row(row: &SqliteRow) -> Result<Room, sqlx::Error> {
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

fn message_from_row(row: &SqliteRow) -> Result<Message, sqlx::Error> {
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
fn page_of(rows: &[SqliteRow], limit: i64) -> ChatResult<(Vec<Message>, bool)> {
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
async fn next_rev_for(tx: &mut Transaction<'_, Sqlite>, id: MessageId) -> ChatResult<i64> {
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
    tx: &mut Transaction<'_, Sqlite>,
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
impl UserStore for SqliteStore {
    #[instrument(skip_all, err(level = "debug"), fields(kind = ?user.kind))]
    async fn create_user(&self, user: NewUser<'_>) -> ChatResult<UserRow> {
        // NOTE: `users.id` is a rowid without AUTOINCREMENT, so after housekeeping deletes
        // the newest account its id is given out again. Foreign keys clear that account's
        // rows, but ids copied into messages (`target_id`, `deleted_by`) then name the new
        // account. PostgreSQL identities never repeat. Sessions behave the same way.
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
            .fetch_one(&self.writer)
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
            .fetch_optional(&self.reader)
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
            .fetch_optional(&self.reader)
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
            .execute(&self.writer)
            .await
            .map_err(store_err)?;
        Ok(())
    }

    #[instrument(skip_all, err, fields(user_id = %id))]
    async fn set_password_hash(&self, id: UserId, hash: &str) -> ChatResult<()> {
        sqlx::query(sql::SET_PASSWORD_HASH)
            .bind(id.0)
            .bind(hash)
            .execute(&self.writer)
            .await
            .map_err(store_err)?;
        Ok(())
    }

    #[instrument(skip_all, err)]
    async fn avatar_in_use(&self, file: &str) -> ChatResult<bool> {
        let found: Option<i64> = sqlx::query_scalar(sql::AVATAR_IN_USE)
            .bind(file)
            .fetch_optional(&self.writer)
            .await
            .map_err(store_err)?;
        Ok(found.is_some())
    }

    #[instrument(skip_all, err)]
    async fn delete_orphan_guests(&self, before: Millis) -> ChatResult<u64> {
        let done = sqlx::query(sql::DELETE_ORPHAN_GUESTS)
            .bind(before)
            .execute(&self.writer)
            .await
            .map_err(store_err)?;
        Ok(done.rows_affected())
    }

    #[instrument(skip_all, err, fields(user_id = %id))]
    async fn set_avatar(&self, id: UserId, avatar: Option<&str>) -> ChatResult<()> {
        sqlx::query(sql::SET_AVATAR)
            .bind(id.0)
            .bind(avatar)
            .execute(&self.writer)
            .await
            .map_err(store_err)?;
        Ok(())
    }
}

#[async_trait]
impl SessionStore for SqliteStore {
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
            .fetch_one(&self.writer)
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
            .fetch_optional(&self.reader)
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
            .execute(&self.writer)
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
            .fetch_all(&self.writer)
            .await
            .map_err(store_err)?;
        Ok(ids.into_iter().map(SessionId).collect())
    }

    #[instrument(skip_all, err)]
    async fn delete_expired_sessions(&self, now: Millis) -> ChatResult<Vec<SessionId>> {
        let ids: Vec<i64> = sqlx::query_scalar(sql::DELETE_EXPIRED_SESSIONS)
            .bind(now)
            .fetch_all(&self.writer)
            .await
            .map_err(store_err)?;
        Ok(ids.into_iter().map(SessionId).collect())
    }
}

#[async_trait]
impl RoomStore for SqliteStore {
    #[instrument(skip_all, err(level = "debug"), fields(visibility = room.visibility.as_str()))]
    async fn create_room(&self, room: NewRoom<'_>) -> ChatResult<Room> {
        let mut tx = self.writer.begin().await.map_err(store_err)?;
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
            .fetch_optional(&self.reader)
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
            .fetch_optional(&self.reader)
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
            .fetch_all(&self.reader)
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
            .fetch_all(&self.reader)
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
            .fetch_optional(&self.reader)
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
        let mut tx = self.writer.begin().await.map_err(store_err)?;
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
        let mut tx = self.writer.begin().await.map_err(store_err)?;
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
            .execute(&self.writer)
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
        let mut tx = self.writer.begin().await.map_err(store_err)?;
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
            .fetch_all(&self.reader)
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
            .execute(&self.writer)
            .await
            .map_err(store_err)?
            .rows_affected();
        Ok(added > 0)
    }

    #[instrument(skip_all, err, fields(room_id = %room_id, user_id = %user_id))]
    async fn has_invite(&self, room_id: RoomId, user_id: UserId) -> ChatResult<bool> {
        let found: Option<i64> = sqlx::query_scalar(sql::HAS_INVITE)
            .bind(room_id.0)
            .bind(user_id.0)
            .fetch_optional(&self.reader)
            .await
            .map_err(store_err)?;
        Ok(found.is_some())
    }

    #[instrument(skip_all, err, fields(room_id = %ban.room_id, user_id = %ban.user_id))]
    async fn add_ban(&self, ban: NewBan<'_>, event: NewMessage) -> ChatResult<Option<Message>> {
        let mut tx = self.writer.begin().await.map_err(store_err)?;
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
        let mut tx = self.writer.begin().await.map_err(store_err)?;
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
            .fetch_optional(&self.reader)
            .await
            .map_err(store_err)?;
        Ok(found.is_some())
    }

    #[instrument(skip_all, err, fields(room_id = %room_id))]
    async fn bans(&self, room_id: RoomId) -> ChatResult<Vec<BanRow>> {
        let rows = sqlx::query(sql::BANS)
            .bind(room_id.0)
            .fetch_all(&self.reader)
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
        let mut tx = self.writer.begin().await.map_err(store_err)?;
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
impl MessageStore for SqliteStore {
    #[instrument(skip_all, err, fields(room_id = %message.room_id, kind = message.kind.as_str()))]
    async fn append_message(&self, message: NewMessage) -> ChatResult<Appended> {
        let stopped =
            || ChatError::Store(anyhow::anyhow!("the SQLite group-commit task has stopped"));
        let (reply, result) = oneshot::channel();
        self.appends
            .send(AppendRequest { message, reply })
            .await
            .map_err(|_| stopped())?;
        result.await.map_err(|_| stopped())?
    }

    #[instrument(skip_all, err, fields(message_id = %id))]
    async fn message_by_id(&self, id: MessageId) -> ChatResult<Option<Message>> {
        let row = sqlx::query(sql::MESSAGE_BY_ID)
            .bind(id.0)
            .fetch_optional(&self.reader)
            .await
            .map_err(store_err)?;
        row.as_ref()
            .map(message_from_row)
            .transpose()
            .map_err(store_err)
    }

    #[instrument(skip_all, err(level = "debug"), fields(message_id = %id))]
    async fn edit_message(&self, id: MessageId, body: &str, now: Millis) -> ChatResult<Message> {
        let mut tx = self.writer.begin().await.map_err(store_err)?;
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
        let mut tx = self.writer.begin().await.map_err(store_err)?;
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
            .fetch_all(&self.reader)
            .await
            .map_err(store_err)?;
        page_of(&rows, limit)
    }

    #[instrument(skip_all, err, fields(room_id = %room_id))]
    async fn room_rev(&self, room_id: RoomId) -> ChatResult<i64> {
        let rev: Option<i64> = sqlx::query_scalar(sql::ROOM_LAST_REV)
            .bind(room_id.0)
            .fetch_optional(&self.reader)
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
                    .fetch_all(&self.reader)
                    .await
            }
            Page::Before(seq) => {
                sqlx::query(sql::HISTORY_BEFORE)
                    .bind(room_id.0)
                    .bind(seq.0)
                    .bind(fetch)
                    .fetch_all(&self.reader)
                    .await
            }
            Page::After(seq) => {
                sqlx::query(sql::HISTORY_AFTER)
                    .bind(room_id.0)
                    .bind(seq.0)
                    .bind(fetch)
                    .fetch_all(&self.reader)
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
            .fetch_one(&self.reader)
            .await
            .map_err(store_err)
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> ChatResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.reader)
            .await
            .map_err(store_err)?;
        Ok(())
    }

    async fn close(&self) {
        // Fold the WAL into the database file, so that the file alone is a complete copy
        // once the server has stopped. Readers close first: the last connection to close
        // checkpoints too, and a read-only one cannot.
        self.reader.close().await;
        if let Err(err) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.writer)
            .await
        {
            tracing::warn!(cause = %err, "WAL checkpoint at shutdown failed");
        }
        self.writer.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::MessageKind;
    use std::sync::Arc;

    async fn store_with_author() -> (tempfile::TempDir, Arc<SqliteStore>, UserId) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(&dir.path().join("confab.db"))
            .await
            .expect("store opens");
        let author = store
            .create_user(NewUser {
                username: None,
                username_key: None,
                display_name: "writer",
                kind: AccountKind::Guest,
                password_hash: None,
                created_at: 0,
            })
            .await
            .expect("user created");
        (dir, Arc::new(store), author.id)
    }

    fn text(author: UserId, body: String, client_msg_id: Option<String>) -> NewMessage {
        NewMessage {
            room_id: RoomId(1),
            kind: MessageKind::Text,
            author_id: Some(author),
            author_name: "writer".into(),
            body,
            target_id: None,
            target_name: None,
            client_msg_id,
            created_at: 0,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_appends_get_gap_free_seqs() {
        let (_dir, store, author) = store_with_author().await;
        let tasks: Vec<_> = (0..300)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .append_message(text(author, format!("m{i}"), None))
                        .await
                })
            })
            .collect();
        let mut seqs = Vec::new();
        for task in tasks {
            let appended = task.await.expect("task ran").expect("append acknowledged");
            assert!(!appended.duplicate);
            seqs.push(appended.message.seq.0);
        }
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=300).collect::<Vec<i64>>());

        let stored = store.message_count().await.expect("count");
        assert_eq!(stored, 300);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn repeated_client_id_in_one_group_stores_once() {
        let (_dir, store, author) = store_with_author().await;
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .append_message(text(author, "same".into(), Some("c1".into())))
                        .await
                })
            })
            .collect();
        let mut originals = 0;
        let mut ids = Vec::new();
        for task in tasks {
            let appended = task.await.expect("task ran").expect("append acknowledged");
            if !appended.duplicate {
                originals += 1;
            }
            ids.push(appended.message.id);
        }
        assert_eq!(originals, 1);
        assert!(ids.iter().all(|id| *id == ids[0]));
        assert_eq!(store.message_count().await.expect("count"), 1);
    }

    #[tokio::test]
    async fn failed_append_leaves_its_group_intact() {
        let (_dir, store, author) = store_with_author().await;
        let mut missing_room = text(author, "lost".into(), None);
        missing_room.room_id = RoomId(999);
        let (bad, good) = tokio::join!(
            store.append_message(missing_room),
            store.append_message(text(author, "kept".into(), None)),
        );
        assert!(bad.is_err(), "a message for a missing room is rejected");
        let good = good.expect("the other message is stored");
        assert_eq!(good.message.seq.0, 1);
        assert_eq!(store.message_count().await.expect("count"), 1);
    }
}
