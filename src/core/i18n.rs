//! Translation tables for every sentence the server shows to people, in English and
//! Simplified Chinese. Gateways pick the language per client (HTTP `Accept-Language`,
//! the Socket.IO handshake's `auth.lang`) and keep the stable error code beside the text.

use super::error::ErrorCode;

/// A language the server can speak.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Lang {
    #[default]
    En,
    ZhCn,
}

impl Lang {
    /// Picks the best supported language from an `Accept-Language` value or a bare tag
    /// such as `zh-CN`; English is the fallback.
    pub fn negotiate(header: &str) -> Self {
        let mut best = (Lang::En, -1.0f32);
        for part in header.split(',') {
            let mut pieces = part.trim().split(';');
            let tag = pieces.next().unwrap_or("").trim().to_ascii_lowercase();
            let quality = pieces
                .find_map(|p| {
                    p.trim()
                        .strip_prefix("q=")
                        .and_then(|q| q.parse::<f32>().ok())
                })
                .unwrap_or(1.0);
            let lang = if tag == "zh" || tag.starts_with("zh-") {
                Some(Lang::ZhCn)
            } else if tag == "en" || tag.starts_with("en-") {
                Some(Lang::En)
            } else {
                None
            };
            if let Some(lang) = lang
                && quality > best.1
            {
                best = (lang, quality);
            }
        }
        best.0
    }

    /// Returns the BCP 47 tag of this language.
    pub fn tag(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::ZhCn => "zh-CN",
        }
    }
}

/// Returns the sentence shown to a person for an error code.
pub fn error_message(code: ErrorCode, lang: Lang) -> &'static str {
    let (en, zh) = match code {
        ErrorCode::InvalidPayload => (
            "The request is malformed or has fields of the wrong type.",
            "请求格式错误或字段类型不正确。",
        ),
        ErrorCode::InvalidUsername => (
            "Usernames are 2 to 32 characters: letters of any script, digits, '.', '_' or '-', starting with a letter or digit.",
            "用户名须为 2 到 32 个字符，可使用任何语言的文字（如汉字、字母）、数字以及“.”“_”“-”，并以文字或数字开头。",
        ),
        ErrorCode::InvalidDisplayName => (
            "Display names are 1 to 64 characters with at least one visible character, and no control or text-direction characters.",
            "显示名称（昵称）须为 1 到 64 个字符，至少包含一个可见字符，且不能包含控制字符或文字方向控制符。",
        ),
        ErrorCode::InvalidPassword => (
            "Passwords need the server's minimum length (8 characters by default) and at most 128 characters.",
            "密码长度须达到服务器要求的最短长度（默认 8 个字符），且不超过 128 个字符。",
        ),
        ErrorCode::InvalidRoomName => (
            "Room names are 1 to 64 characters: letters of any script, digits, '.', '_' or '-', with no spaces.",
            "房间名须为 1 到 64 个字符，只能使用任何语言的文字（如汉字、字母）、数字以及“.”“_”“-”，不能有空格。",
        ),
        ErrorCode::InvalidTopic => (
            "Topics are at most 300 characters and contain no control characters.",
            "话题最多 300 个字符，且不能包含控制字符。",
        ),
        ErrorCode::InvalidBody => (
            "The message is empty or contains control characters.",
            "消息为空或包含控制字符。",
        ),
        ErrorCode::BodyTooLong => (
            "The message is longer than this server allows; the detail field gives the limit.",
            "消息超过了服务器允许的长度，具体上限见 detail 字段。",
        ),
        ErrorCode::InvalidClientMsgId => (
            "client_msg_id must be 1 to 64 printable ASCII characters.",
            "client_msg_id 须为 1 到 64 个可打印 ASCII 字符。",
        ),
        ErrorCode::ClientMsgIdReused => (
            "That client_msg_id was already used for a message in another room; use a new one.",
            "该 client_msg_id 已用于其他房间的消息，请换一个新的。",
        ),
        ErrorCode::InvalidImage => (
            "The avatar must be a PNG, JPEG, GIF or WebP image of at most 1024×1024 pixels.",
            "头像须为 PNG、JPEG、GIF 或 WebP 图片，尺寸不超过 1024×1024 像素。",
        ),
        ErrorCode::ImageTooLarge => ("The image file is too large.", "图片文件过大。"),
        ErrorCode::UsernameTaken => ("That username is already taken.", "该用户名已被占用。"),
        ErrorCode::RoomNameTaken => ("A room with that name already exists.", "同名房间已存在。"),
        ErrorCode::NicknameTaken => (
            "That nickname belongs to a registered user.",
            "该昵称属于已注册用户。",
        ),
        ErrorCode::BadCredentials => ("Wrong username or password.", "用户名或密码错误。"),
        ErrorCode::WrongPassword => ("The current password is wrong.", "当前密码错误。"),
        ErrorCode::Unauthenticated => (
            "Sign in first: the session is missing, expired or invalid.",
            "请先登录：会话不存在、已过期或无效。",
        ),
        ErrorCode::CsrfFailed => (
            "The CSRF token is missing or wrong; reload the page and try again.",
            "CSRF 令牌缺失或错误，请刷新页面后重试。",
        ),
        ErrorCode::OriginRejected => (
            "Connections from this origin are not allowed.",
            "不允许来自该来源的连接。",
        ),
        ErrorCode::GuestsDisabled => (
            "Guest access is turned off on this server; sign in or register.",
            "本服务器已关闭访客模式，请登录或注册。",
        ),
        ErrorCode::GuestNotAllowed => (
            "Guests can only read and post in public rooms; register to do this.",
            "访客只能在公开房间阅读和发言，注册后才能进行此操作。",
        ),
        ErrorCode::Forbidden => (
            "You do not have permission to do that.",
            "你没有执行此操作的权限。",
        ),
        ErrorCode::NotMember => ("You are not a member of this room.", "你不是该房间的成员。"),
        ErrorCode::TargetNotMember => (
            "That user is not a member of this room.",
            "该用户不是此房间的成员。",
        ),
        ErrorCode::AlreadyMember => ("Already a member of this room.", "已经是该房间的成员。"),
        ErrorCode::Banned => (
            "The user is banned from this room, so they can neither join nor be invited until a moderator lifts the ban.",
            "该用户已被此房间封禁，在管理员解除封禁之前既不能加入也不能被邀请。",
        ),
        ErrorCode::NotBanned => (
            "That user is not banned from this room.",
            "该用户未被此房间封禁。",
        ),
        ErrorCode::RoomModerated => (
            "This room is moderated: only its owner and admins may post.",
            "此房间处于审核模式：只有房主和管理员可以发言。",
        ),
        ErrorCode::NotFound => ("Not found.", "未找到。"),
        ErrorCode::RoomNotFound => ("No such room.", "房间不存在。"),
        ErrorCode::UserNotFound => ("No such user.", "用户不存在。"),
        ErrorCode::MessageNotFound => ("No such message.", "消息不存在。"),
        ErrorCode::MessageDeleted => ("That message was deleted.", "该消息已被删除。"),
        ErrorCode::RateLimited => (
            "Too many requests; wait a moment and try again.",
            "操作过于频繁，请稍后再试。",
        ),
        ErrorCode::PayloadTooLarge => ("The request is too large.", "请求过大。"),
        ErrorCode::MethodNotAllowed => (
            "This endpoint does not support that HTTP method.",
            "该接口不支持此 HTTP 方法。",
        ),
        ErrorCode::UnknownEvent => ("Unknown event.", "未知事件。"),
        ErrorCode::ShuttingDown => (
            "The server is shutting down; reconnect shortly.",
            "服务器正在关闭，请稍后重新连接。",
        ),
        ErrorCode::StoreUnavailable => (
            "The message store is unavailable; nothing was saved. Try again.",
            "消息存储暂不可用，内容未保存，请重试。",
        ),
        ErrorCode::Internal => (
            "Something went wrong on the server; try again.",
            "服务器内部错误，请重试。",
        ),
    };
    match lang {
        Lang::En => en,
        Lang::ZhCn => zh,
    }
}

/// Other sentences the server sends to people, outside error replies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notice {
    /// Sent to every connection before a graceful shutdown closes it.
    ServerShuttingDown,
    /// Sent when logout or a password change ends the session a connection used.
    SessionEnded,
    /// Sent to a connection that stopped reading and overflowed its queue.
    SlowConsumer,
    /// Sent to a connection that sent events faster than the server could handle them.
    TooManyEvents,
}

/// Returns the sentence for a notice.
pub fn notice(notice: Notice, lang: Lang) -> &'static str {
    let (en, zh) = match notice {
        Notice::ServerShuttingDown => (
            "The server is shutting down; reconnect in a moment.",
            "服务器正在关闭，请稍后重新连接。",
        ),
        Notice::SessionEnded => (
            "This session has ended; sign in again.",
            "此会话已结束，请重新登录。",
        ),
        Notice::TooManyEvents => (
            "Disconnected: too many requests were waiting; slow down and reconnect.",
            "连接已断开：待处理的请求过多，请放慢速度后重新连接。",
        ),
        Notice::SlowConsumer => (
            "Disconnected: the connection fell too far behind the room.",
            "连接已断开：接收速度过慢，落后房间消息过多。",
        ),
    };
    match lang {
        Lang::En => en,
        Lang::ZhCn => zh,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiate_prefers_highest_quality() {
        assert_eq!(Lang::negotiate("zh-CN,zh;q=0.9,en;q=0.8"), Lang::ZhCn);
        assert_eq!(Lang::negotiate("en-US,en;q=0.9,zh;q=0.5"), Lang::En);
        assert_eq!(Lang::negotiate("fr-FR, zh;q=0.4"), Lang::ZhCn);
    }

    #[test]
    fn negotiate_falls_back_to_english() {
        assert_eq!(Lang::negotiate(""), Lang::En);
        assert_eq!(Lang::negotiate("de, fr;q=0.8"), Lang::En);
        assert_eq!(Lang::negotiate("zh;q=abc"), Lang::ZhCn);
    }
}
