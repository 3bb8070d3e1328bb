// Translation tables and locale-aware formatting. Every string the client shows goes
// through t(), so each screen exists in Simplified Chinese and English.

/** @typedef {'en' | 'zh-CN'} Lang */

const STORAGE_KEY = 'confab.lang';

/** @type {Record<Lang, Record<string, string>>} */
const TABLES = {
  en: {
    'app.title': 'Confab',
    'lang.switch': 'Language',
    'auth.heading': 'Welcome to Confab',
    'auth.tab.login': 'Sign in',
    'auth.tab.register': 'Register',
    'auth.tab.guest': 'Guest',
    'auth.username': 'Username',
    'auth.password': 'Password',
    'auth.display_name': 'Display name (optional)',
    'auth.nickname': 'Nickname (optional)',
    'auth.submit.login': 'Sign in',
    'auth.submit.register': 'Create account',
    'auth.submit.guest': 'Continue as guest',
    'auth.guest_hint': 'Guests can read and write in public rooms for 24 hours.',
    'conn.reconnecting': 'Connection lost. Reconnecting…',
    'conn.connecting': 'Connecting…',
    'rooms.heading': 'Rooms',
    'rooms.mine': 'My rooms',
    'rooms.direct': 'Direct messages',
    'rooms.public': 'Public rooms to join',
    'rooms.none_public': 'No other public rooms.',
    'rooms.create': 'New room',
    'rooms.join': 'Join',
    'rooms.unread': '{count} unread',
    'rooms.members_count': '{count} members',
    'rooms.members_count_one': '{count} member',
    'create.heading': 'Create a room',
    'create.name': 'Room name',
    'create.topic': 'Topic (optional)',
    'create.visibility': 'Who can join',
    'create.public': 'Public: anyone can join',
    'create.private': 'Private: by invitation',
    'create.submit': 'Create',
    'dialog.cancel': 'Cancel',
    'dialog.close': 'Close',
    'chat.empty': 'Choose a room to start chatting.',
    'chat.back': 'Back to rooms',
    'chat.online': '{count} online',
    'chat.messages': 'Messages',
    'chat.new_message': '{name}: {body}',
    'chat.members': 'Members',
    'chat.leave': 'Leave room',
    'chat.loading_older': 'Loading earlier messages…',
    'chat.beginning': 'This is the beginning of the room.',
    'chat.composer': 'Message',
    'chat.composer_hint': 'Enter to send, Shift+Enter for a new line',
    'chat.send': 'Send',
    'chat.editing': 'Editing a message. Esc to cancel.',
    'chat.save': 'Save',
    'chat.typing_one': '{name} is typing…',
    'chat.typing_many': '{count} people are typing…',
    'msg.edit': 'Edit',
    'msg.recall': 'Recall',
    'msg.edited': '(edited)',
    'msg.sending': 'Sending…',
    'msg.failed': 'Not sent: {reason}',
    'msg.retry': 'Retry',
    'msg.recalled': '{name} recalled a message',
    'msg.recalled_unnamed': 'A message was recalled',
    'msg.join': '{name} joined the room',
    'msg.leave': '{name} left the room',
    'msg.kick': '{target} was removed by {name}',
    'msg.topic': '{name} set the topic: {topic}',
    'msg.topic_cleared': '{name} cleared the topic',
    'msg.invite': '{name} invited {target}',
    'msg.ban': '{target} was banned by {name}',
    'msg.ban_reason': '{target} was banned by {name}: {topic}',
    'msg.unban': '{name} lifted the ban on {target}',
    'msg.settings': '{name} changed the room settings: {changes}',
    'settings.heading': 'Room settings',
    'settings.moderated': 'Moderated: only the owner and admins may post',
    'settings.topic_locked': 'Topic locked: only the owner and admins may set the topic',
    'settings.moderated_on': 'only the owner and admins may post',
    'settings.moderated_off': 'everyone may post',
    'settings.topic_locked_on': 'only the owner and admins may set the topic',
    'settings.topic_locked_off': 'every member may set the topic',
    'settings.separator': '; ',
    'chat.moderated': 'Moderated',
    'chat.moderated_hint': 'Only the owner and admins may post in this room.',
    'members.ban': 'Ban',
    'members.ban_prompt': 'Ban {name} from this room? They are removed and cannot rejoin until the ban is lifted. Reason (optional):',
    'bans.heading': 'Banned',
    'bans.none': 'Nobody is banned.',
    'bans.lift': 'Lift ban',
    'msg.deleted_user': 'a former guest',
    'members.heading': 'Members',
    'members.online': 'online',
    'members.offline': 'offline',
    'members.you': '(you)',
    'members.direct': 'Message',
    'role.owner': 'owner',
    'role.admin': 'admin',
    'role.member': 'member',
    'role.guest': 'guest',
    'profile.heading': 'Profile',
    'profile.open': 'Profile',
    'profile.guest_note': 'You are a guest. Register to keep your name and rooms.',
    'profile.display_name': 'Display name',
    'profile.save_name': 'Save name',
    'profile.avatar': 'Avatar (PNG, JPEG, GIF or WebP, at most 1 MiB)',
    'profile.upload_avatar': 'Upload avatar',
    'profile.remove_avatar': 'Remove avatar',
    'profile.current_password': 'Current password',
    'profile.new_password': 'New password',
    'profile.change_password': 'Change password',
    'profile.logout': 'Log out',
    'profile.saved': 'Saved.',
    'profile.password_changed': 'Password changed. Other sessions were signed out.',
    'error.unknown': 'Something went wrong ({code}).',
  },
  'zh-CN': {
    'app.title': 'Confab',
    'lang.switch': '语言',
    'auth.heading': '欢迎使用 Confab',
    'auth.tab.login': '登录',
    'auth.tab.register': '注册',
    'auth.tab.guest': '访客',
    'auth.username': '用户名',
    'auth.password': '密码',
    'auth.display_name': '显示名称（可选）',
    'auth.nickname': '昵称（可选）',
    'auth.submit.login': '登录',
    'auth.submit.register': '创建账号',
    'auth.submit.guest': '以访客身份继续',
    'auth.guest_hint': '访客可以在 24 小时内阅读公开房间并发言。',
    'conn.reconnecting': '连接已断开，正在重新连接…',
    'conn.connecting': '正在连接…',
    'rooms.heading': '房间',
    'rooms.mine': '我的房间',
    'rooms.direct': '私信',
    'rooms.public': '可加入的公开房间',
    'rooms.none_public': '没有其他公开房间。',
    'rooms.create': '新建房间',
    'rooms.join': '加入',
    'rooms.unread': '{count} 条未读',
    'rooms.members_count': '{count} 位成员',
    'create.heading': '创建房间',
    'create.name': '房间名称',
    'create.topic': '主题（可选）',
    'create.visibility': '谁可以加入',
    'create.public': '公开：任何人都可以加入',
    'create.private': '私密：仅限受邀者',
    'create.submit': '创建',
    'dialog.cancel': '取消',
    'dialog.close': '关闭',
    'chat.empty': '选择一个房间开始聊天。',
    'chat.back': '返回房间列表',
    'chat.online': '{count} 人在线',
    'chat.messages': '消息',
    'chat.new_message': '{name}：{body}',
    'chat.members': '成员',
    'chat.leave': '退出房间',
    'chat.loading_older': '正在加载更早的消息…',
    'chat.beginning': '这是房间的开头。',
    'chat.composer': '消息',
    'chat.composer_hint': '按 Enter 发送，Shift+Enter 换行',
    'chat.send': '发送',
    'chat.editing': '正在编辑消息，按 Esc 取消。',
    'chat.save': '保存',
    'chat.typing_one': '{name} 正在输入…',
    'chat.typing_many': '{count} 人正在输入…',
    'msg.edit': '编辑',
    'msg.recall': '撤回',
    'msg.edited': '（已编辑）',
    'msg.sending': '发送中…',
    'msg.failed': '未发送：{reason}',
    'msg.retry': '重试',
    'msg.recalled': '{name} 撤回了一条消息',
    'msg.recalled_unnamed': '一条消息已被撤回',
    'msg.join': '{name} 加入了房间',
    'msg.leave': '{name} 离开了房间',
    'msg.kick': '{target} 被 {name} 移出了房间',
    'msg.topic': '{name} 将主题设为：{topic}',
    'msg.topic_cleared': '{name} 清除了主题',
    'msg.invite': '{name} 邀请了 {target}',
    'msg.ban': '{target} 被 {name} 封禁',
    'msg.ban_reason': '{target} 被 {name} 封禁：{topic}',
    'msg.unban': '{name} 解除了对 {target} 的封禁',
    'msg.settings': '{name} 修改了房间设置：{changes}',
    'settings.heading': '房间设置',
    'settings.moderated': '审核模式：只有房主和管理员可以发言',
    'settings.topic_locked': '锁定话题：只有房主和管理员可以设置话题',
    'settings.moderated_on': '只有房主和管理员可以发言',
    'settings.moderated_off': '所有人都可以发言',
    'settings.topic_locked_on': '只有房主和管理员可以设置话题',
    'settings.topic_locked_off': '所有成员都可以设置话题',
    'settings.separator': '；',
    'chat.moderated': '审核模式',
    'chat.moderated_hint': '此房间只有房主和管理员可以发言。',
    'members.ban': '封禁',
    'members.ban_prompt': '要将 {name} 从此房间封禁吗？对方会被移出房间，解除封禁前无法再次加入。原因（可选）：',
    'bans.heading': '已封禁',
    'bans.none': '没有被封禁的用户。',
    'bans.lift': '解除封禁',
    'msg.deleted_user': '一位已离开的访客',
    'members.heading': '成员',
    'members.online': '在线',
    'members.offline': '离线',
    'members.you': '（你）',
    'members.direct': '发私信',
    'role.owner': '房主',
    'role.admin': '管理员',
    'role.member': '成员',
    'role.guest': '访客',
    'profile.heading': '个人资料',
    'profile.open': '个人资料',
    'profile.guest_note': '你是访客。注册后可以保留名称和房间。',
    'profile.display_name': '显示名称',
    'profile.save_name': '保存名称',
    'profile.avatar': '头像（PNG、JPEG、GIF 或 WebP，最大 1 MiB）',
    'profile.upload_avatar': '上传头像',
    'profile.remove_avatar': '移除头像',
    'profile.current_password': '当前密码',
    'profile.new_password': '新密码',
    'profile.change_password': '修改密码',
    'profile.logout': '退出登录',
    'profile.saved': '已保存。',
    'profile.password_changed': '密码已修改，其他会话已退出。',
    'error.unknown': '出现错误（{code}）。',
  },
};

/** Sentences for the server's stable error codes (docs/protocol.md, "Error codes"). */
/** @type {Record<Lang, Record<string, string>>} */
const ERRORS = {
  en: {
    invalid_payload: 'The request was malformed.',
    invalid_username: 'Usernames are 2 to 32 letters, digits, ".", "_" or "-", starting with a letter or digit.',
    invalid_display_name: 'Names are 1 to 64 characters with at least one visible character.',
    invalid_password: 'Passwords are 8 to 128 characters.',
    invalid_room_name: 'Room names are 1 to 64 letters, digits, ".", "_" or "-".',
    invalid_topic: 'Topics are at most 300 characters, without control characters.',
    invalid_body: 'The message needs at least one visible character.',
    body_too_long: 'The message is too long.',
    invalid_client_msg_id: 'The message id is invalid.',
    client_msg_id_reused: 'This message id was already used in another room.',
    invalid_image: 'The avatar must be a PNG, JPEG, GIF or WebP image of at most 1024×1024 pixels.',
    image_too_large: 'The avatar file is too large.',
    payload_too_large: 'The request is too large.',
    method_not_allowed: 'The server does not support this request.',
    bad_credentials: 'Wrong username or password.',
    unauthenticated: 'Please sign in again.',
    wrong_password: 'The current password is wrong.',
    csrf_failed: 'The request failed a security check. Reload the page.',
    origin_rejected: 'This site is not allowed to use the server.',
    guests_disabled: 'Guest access is turned off on this server.',
    guest_not_allowed: 'Guests cannot do this. Register to continue.',
    forbidden: 'You are not allowed to do this.',
    not_member: 'You are not a member of this room.',
    target_not_member: 'That user is not a member of this room.',
    not_found: 'Not found.',
    room_not_found: 'The room does not exist or you cannot see it.',
    user_not_found: 'No such user.',
    message_not_found: 'The message does not exist.',
    unknown_event: 'The server does not understand this request.',
    username_taken: 'That username is taken.',
    room_name_taken: 'A room with that name already exists.',
    nickname_taken: 'That nickname belongs to a registered user.',
    already_member: 'That user is already a member.',
    banned: 'Banned from this room: joining or being invited is not possible until a moderator lifts the ban.',
    not_banned: 'That user is not banned from this room.',
    room_moderated: 'This room is moderated: only the owner and admins may post.',
    message_deleted: 'The message was recalled.',
    rate_limited: 'Too many requests. Wait a moment and try again.',
    shutting_down: 'The server is shutting down. Try again shortly.',
    store_unavailable: 'The server cannot save right now. Try again.',
    internal: 'The server had a problem. Try again.',
    timeout: 'The server did not answer in time.',
    disconnected: 'Not connected.',
    session_ended: 'Your session has ended. Please sign in again.',
    network: 'The server cannot be reached. Check the connection and try again.',
  },
  'zh-CN': {
    invalid_payload: '请求格式不正确。',
    invalid_username: '用户名为 2 到 32 个字母、数字、“.”、“_”或“-”，且以字母或数字开头。',
    invalid_display_name: '名称为 1 到 64 个字符，且至少包含一个可见字符。',
    invalid_password: '密码长度为 8 到 128 个字符。',
    invalid_room_name: '房间名称为 1 到 64 个字母、数字、“.”、“_”或“-”。',
    invalid_topic: '主题最多 300 个字符，且不能包含控制字符。',
    invalid_body: '消息至少需要一个可见字符。',
    body_too_long: '消息太长了。',
    invalid_client_msg_id: '消息编号无效。',
    client_msg_id_reused: '该消息编号已在其他房间使用过。',
    invalid_image: '头像必须是不超过 1024×1024 像素的 PNG、JPEG、GIF 或 WebP 图片。',
    image_too_large: '头像文件太大。',
    payload_too_large: '请求内容太大。',
    method_not_allowed: '服务器不支持此请求。',
    bad_credentials: '用户名或密码错误。',
    unauthenticated: '请重新登录。',
    wrong_password: '当前密码不正确。',
    csrf_failed: '请求未通过安全检查，请刷新页面。',
    origin_rejected: '此网站无权使用该服务器。',
    guests_disabled: '此服务器已关闭访客登录。',
    guest_not_allowed: '访客无法执行此操作，请注册后继续。',
    forbidden: '你没有执行此操作的权限。',
    not_member: '你不是此房间的成员。',
    target_not_member: '该用户不是此房间的成员。',
    not_found: '未找到。',
    room_not_found: '房间不存在或你无权查看。',
    user_not_found: '用户不存在。',
    message_not_found: '消息不存在。',
    unknown_event: '服务器无法理解此请求。',
    username_taken: '该用户名已被占用。',
    room_name_taken: '同名房间已存在。',
    nickname_taken: '该昵称属于已注册用户。',
    already_member: '该用户已经是成员。',
    banned: '已被此房间封禁：在管理员解除封禁之前无法加入或被邀请。',
    not_banned: '该用户未被此房间封禁。',
    room_moderated: '此房间处于审核模式：只有房主和管理员可以发言。',
    message_deleted: '该消息已被撤回。',
    rate_limited: '请求过于频繁，请稍后再试。',
    shutting_down: '服务器正在关闭，请稍后再试。',
    store_unavailable: '服务器暂时无法保存，请重试。',
    internal: '服务器出现问题，请重试。',
    timeout: '服务器未及时响应。',
    disconnected: '尚未连接。',
    session_ended: '会话已结束，请重新登录。',
    network: '无法连接服务器，请检查网络后重试。',
  },
};

/** @type {Lang} */
let current = detectLang();
/** @type {Set<() => void>} */
const listeners = new Set();

/** Picks the stored choice, else the first of the browser's languages that we have. */
function detectLang() {
  const stored = localStorage.getItem(STORAGE_KEY);
  if (stored === 'en' || stored === 'zh-CN') return stored;
  for (const tag of navigator.languages || [navigator.language]) {
    const lower = String(tag).toLowerCase();
    if (lower.startsWith('zh')) return 'zh-CN';
    if (lower.startsWith('en')) return 'en';
  }
  return 'en';
}

/** @returns {Lang} */
export function lang() {
  return current;
}

/** @param {Lang} next */
export function setLang(next) {
  current = next === 'zh-CN' ? 'zh-CN' : 'en';
  localStorage.setItem(STORAGE_KEY, current);
  document.documentElement.lang = current;
  for (const listener of listeners) listener();
}

/** Registers a callback run after each language change. @param {() => void} listener */
export function onLangChange(listener) {
  listeners.add(listener);
}

/**
 * Translates `key`, replacing `{name}` placeholders with `params`. Numbers in params are
 * formatted for the language. When `params.count` is a number whose plural category
 * (Intl.PluralRules) is "one" and the table has `key_one`, that entry is used.
 * @param {string} key
 * @param {Record<string, string | number>} [params]
 */
export function t(key, params = {}) {
  if (typeof params.count === 'number' && new Intl.PluralRules(current).select(params.count) === 'one') {
    const singular = TABLES[current][`${key}_one`];
    if (singular !== undefined) key = `${key}_one`;
  }
  const template = TABLES[current][key] ?? TABLES.en[key] ?? key;
  return template.replace(/\{(\w+)\}/g, (_, name) => {
    const value = params[name];
    if (typeof value === 'number') return formatNumber(value);
    return value === undefined ? `{${name}}` : String(value);
  });
}

/** Translates a server error code; unknown codes name themselves. @param {string} code */
export function errorText(code) {
  return ERRORS[current][code] ?? ERRORS.en[code] ?? t('error.unknown', { code });
}

/** @param {number} value */
export function formatNumber(value) {
  return new Intl.NumberFormat(current).format(value);
}

/** Formats a time for the reader: time only for today, date and time otherwise. */
export function formatTime(/** @type {number} */ millis) {
  const date = new Date(millis);
  const today = new Date();
  const sameDay = date.toDateString() === today.toDateString();
  const options = sameDay
    ? { hour: '2-digit', minute: '2-digit' }
    : { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' };
  return new Intl.DateTimeFormat(current, /** @type {Intl.DateTimeFormatOptions} */ (options)).format(date);
}

/** Full date and time for a tooltip. @param {number} millis */
export function formatFullTime(millis) {
  return new Intl.DateTimeFormat(current, { dateStyle: 'full', timeStyle: 'medium' }).format(new Date(millis));
}

document.documentElement.lang = current;
