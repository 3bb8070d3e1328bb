//! Avatars: uploaded images checked by content, stored by hash, and a generated
//! default for everyone else.

use super::{Avatar, ChatService, Session};
use crate::core::error::{ChatError, ChatResult, ErrorCode};
use crate::core::ids::UserId;
use crate::core::model::User;
use imagesize::ImageType;
use sha2::{Digest, Sha256};
use std::time::Instant;

/// Largest accepted avatar width and height, in pixels.
pub const AVATAR_MAX_PIXELS: usize = 1024;

/// Background colours of generated avatars, picked by user id.
const PALETTE: [&str; 8] = [
    "#1e88e5", "#43a047", "#e53935", "#8e24aa", "#f4511e", "#00897b", "#3949ab", "#6d4c41",
];

/// Returns the media type and file extension of a supported image, judged by its bytes.
fn image_kind(bytes: &[u8]) -> Option<(&'static str, &'static str)> {
    match imagesize::image_type(bytes).ok()? {
        ImageType::Png => Some(("image/png", "png")),
        ImageType::Jpeg => Some(("image/jpeg", "jpg")),
        ImageType::Gif => Some(("image/gif", "gif")),
        ImageType::Webp => Some(("image/webp", "webp")),
        _ => None,
    }
}

fn media_type_of(file: &str) -> &'static str {
    match file.rsplit('.').next() {
        Some("png") => "image/png",
        Some("jpg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        _ => "application/octet-stream",
    }
}

/// Escapes text for an XML text node.
fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            _ => out.push(c),
        }
    }
    out
}

/// Draws the default avatar: the first visible character of the name on a colour
/// chosen by user id.
fn generated_avatar(id: UserId, display_name: &str) -> Vec<u8> {
    let initial: String = display_name
        .chars()
        .find(|c| crate::core::names::is_visible(*c))
        .map(|c| c.to_uppercase().collect())
        .unwrap_or_else(|| "?".to_owned());
    let colour = PALETTE[(id.0.unsigned_abs() % PALETTE.len() as u64) as usize];
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"64\" height=\"64\" viewBox=\"0 0 64 64\">\
         <rect width=\"64\" height=\"64\" rx=\"12\" fill=\"{colour}\"/>\
         <text x=\"32\" y=\"42\" font-size=\"30\" text-anchor=\"middle\" fill=\"#fff\" \
         font-family=\"sans-serif\">{}</text></svg>",
        xml_escape(&initial)
    )
    .into_bytes()
}

impl ChatService {
    /// Stores an uploaded avatar after checking its size, type and dimensions by content,
    /// and announces it to the user's rooms.
    pub async fn set_avatar(&self, session: &Session, bytes: &[u8]) -> ChatResult<User> {
        session.require_registered()?;
        if bytes.len() > self.config.max_avatar_bytes {
            return Err(ChatError::new(
                ErrorCode::ImageTooLarge,
                format!("avatar of {} bytes", bytes.len()),
            ));
        }
        let (_, ext) = image_kind(bytes).ok_or_else(|| {
            ChatError::new(
                ErrorCode::InvalidImage,
                "avatar is not PNG, JPEG, GIF or WebP",
            )
        })?;
        let size = imagesize::blob_size(bytes).map_err(|e| {
            ChatError::new(ErrorCode::InvalidImage, format!("unreadable image: {e}"))
        })?;
        if size.width == 0
            || size.height == 0
            || size.width > AVATAR_MAX_PIXELS
            || size.height > AVATAR_MAX_PIXELS
        {
            return Err(ChatError::new(
                ErrorCode::InvalidImage,
                format!("avatar is {}x{} pixels", size.width, size.height),
            ));
        }

        // An upload is a write like a message, and counts against the same budget.
        let started = Instant::now();
        self.check_send_limit(session.user_id()).await?;
        let _write = self.begin_write()?;
        let previous = self.user_row(session.user_id()).await?.avatar;
        let file = format!("{}.{ext}", hex::encode(Sha256::digest(bytes)));
        let path = self.config.avatar_dir.join(&file);
        if !tokio::fs::try_exists(&path).await.unwrap_or(false) {
            // Write under a temporary name and rename, so readers never see half a file.
            let partial = self.config.avatar_dir.join(format!("{file}.partial"));
            tokio::fs::write(&partial, bytes)
                .await
                .map_err(|e| ChatError::Internal(e.into()))?;
            tokio::fs::rename(&partial, &path)
                .await
                .map_err(|e| ChatError::Internal(e.into()))?;
        }
        self.store
            .set_avatar(session.user_id(), Some(&file))
            .await?;
        let user = self.user(session.user_id()).await?;
        if previous.as_deref() != Some(file.as_str()) {
            self.forget_avatar(previous.as_deref()).await;
            self.announce_user(&user.display_name, &user, started).await;
        }
        Ok(user)
    }

    /// Deletes an avatar file that no account uses any more. Two users may upload the same
    /// image, which is then one file, so the check looks at every account.
    async fn forget_avatar(&self, file: Option<&str>) {
        let Some(file) = file else { return };
        match self.store.avatar_in_use(file).await {
            Ok(true) => {}
            Ok(false) => {
                if let Err(err) = tokio::fs::remove_file(self.config.avatar_dir.join(file)).await {
                    tracing::warn!(file, cause = %err, "failed to delete an unused avatar file");
                }
            }
            Err(err) => tracing::warn!(file, cause = %err, "failed to check avatar use"),
        }
    }

    /// Returns to the generated avatar and announces the change.
    pub async fn clear_avatar(&self, session: &Session) -> ChatResult<User> {
        let started = Instant::now();
        session.require_registered()?;
        let _write = self.begin_write()?;
        let previous = self.user_row(session.user_id()).await?.avatar;
        self.store.set_avatar(session.user_id(), None).await?;
        self.forget_avatar(previous.as_deref()).await;
        let user = self.user(session.user_id()).await?;
        if previous.is_some() {
            self.announce_user(&user.display_name, &user, started).await;
        }
        Ok(user)
    }

    /// Returns a user's avatar image: the upload if there is one, else a generated SVG.
    pub async fn avatar(&self, id: UserId) -> ChatResult<Avatar> {
        let row = self.user_row(id).await?;
        if let Some(file) = &row.avatar {
            match tokio::fs::read(self.config.avatar_dir.join(file)).await {
                Ok(bytes) => {
                    return Ok(Avatar {
                        bytes,
                        content_type: media_type_of(file),
                    });
                }
                Err(err) => {
                    tracing::warn!(user_id = %id, file, cause = %err, "avatar file unreadable, serving the generated one");
                }
            }
        }
        Ok(Avatar {
            bytes: generated_avatar(row.id, &row.display_name),
            content_type: "image/svg+xml",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_avatar_escapes_markup() {
        let svg = String::from_utf8(generated_avatar(UserId(3), "<script>")).unwrap();
        assert!(svg.contains("&lt;"), "{svg}");
        assert!(!svg.contains("<script"), "{svg}");
    }

    #[test]
    fn generated_avatar_uses_first_visible_character() {
        let svg = String::from_utf8(generated_avatar(UserId(1), "\u{200B}小明")).unwrap();
        assert!(svg.contains(">小<"), "{svg}");
    }

    #[test]
    fn image_kind_checks_magic_bytes() {
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x10\0\0\0\x10\x08\x06\0\0\0";
        assert_eq!(image_kind(png), Some(("image/png", "png")));
        assert_eq!(image_kind(b"<svg onload=alert(1)>"), None);
        assert_eq!(image_kind(b""), None);
    }
}
