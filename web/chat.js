// The chat screen: room list, message view, members and the connection to the server.
//
// Messages are kept per room by id and shown in `seq` order, so a message that arrives
// twice (live and in a catch-up page) is shown once. After every (re)connect the client
// catches up on the rooms it has loaded with `sync` by room revision, which also brings
// edits and recalls made while it was away (docs/protocol.md, "Reconnecting").

import { api, ApiError } from './api.js';
import { languageSwitch } from './app.js';
import { el, fill, nameNode } from './dom.js';
import { messageItem, pendingItem, textWithName } from './message-view.js';
import { openCreateRoom, openProfile } from './dialogs.js';
import { errorText, onLangChange, t } from './i18n.js';
import { Socket } from './socket.js';

const HISTORY_PAGE = 50;
/** Messages read per room to count unread ones after a reload; the server allows at most 100. */
const UNREAD_PAGE = 100;
/** Scrolling closer than this to the top of the log loads older messages. */
const LOAD_OLDER_MARGIN_PX = 120;
/** The server forwards one `typing` per user and room every 2 s; a hint older than this is dropped. */
const TYPING_SHOWN_MS = 5000;
const TYPING_SEND_EVERY_MS = 2000;
/** Catch-up pages requested per reconnect at most, so a faulty server cannot loop us. */
const MAX_SYNC_ROUNDS = 50;
/**
 * The list of rooms to join is re-read this often, for member counts and for a
 * `room:created` that a slow connection missed.
 */
const ROOM_LIST_REFRESH_MS = 60_000;

/**
 * @typedef {{ id: number, room_id: number, seq: number, rev: number, kind: string,
 *   author_id: number | null, author_name: string, body: string, target_id: number | null,
 *   target_name: string | null, client_msg_id: string | null, created_at: number,
 *   edited_at: number | null, deleted_at: number | null, deleted_by: number | null }} Message
 * @typedef {{ body: string, error: string | null, ackId: number | null, createdAt: number }} Pending
 * @typedef {{ entry: any, messages: Map<number, Message>, pending: Map<string, Pending>,
 *   loaded: boolean, loading: boolean, hasOlder: boolean, lastRev: number,
 *   typing: Map<number, { name: string, until: number }>,
 *   unread: Map<number, number>, unreadMore: boolean }} RoomState
 */

/** State of the chat screen, reset on each sign-in. */
const state = {
  /** @type {any} */ me: null,
  /** @type {Map<number, RoomState>} */ rooms: new Map(),
  /** @type {any[]} public rooms the user has not joined */ publicRooms: [],
  /** @type {number | null} */ currentId: null,
  /** @type {'connecting' | 'online' | 'reconnecting'} */ connection: 'connecting',
  membersOpen: false,
  /** @type {any[]} */ members: [],
  /** @type {any[]} bans of the current room, loaded for moderators only */ bans: [],
  /** @type {Map<number, string>} versioned avatar address per user id, from User objects */ avatars: new Map(),
  /** @type {number | null} id of the message being edited */ editing: null,
  /** @type {string} error code shown above the composer */ alert: '',
  lastTypingSent: 0,
  /** @type {Socket | null} */ socket: null,
};

/** Elements of the chat screen, built by buildLayout(). */
/** @type {Record<string, HTMLElement> & { composer: HTMLTextAreaElement }} */
let ui = /** @type {any} */ ({});
/** @type {(reason?: string) => void} */
let signOut = () => {};

/**
 * Builds the chat screen in `root` and connects.
 * @param {HTMLElement} root @param {(reason?: string) => void} onSignedOut
 */
export function startChat(root, onSignedOut) {
  signOut = (reason) => {
    window.clearInterval(roomListTimer);
    state.socket?.close();
    state.socket = null;
    onSignedOut(reason);
  };
  state.me = null;
  state.rooms = new Map();
  state.publicRooms = [];
  state.currentId = null;
  state.connection = 'connecting';
  buildLayout(root);

  // The handshake authenticates by the session cookie. `create_guest: false` makes an
  // expired cookie refuse the connection instead of signing in a new guest.
  const socket = new Socket(() => ({ create_guest: false, lang: document.documentElement.lang }));
  state.socket = socket;
  socket.on('session', onSession);
  socket.on('message:new', (message) => applyLive(message));
  socket.on('message:edited', (message) => applyLive(message));
  socket.on('message:deleted', onDeleted);
  socket.on('room:added', (room) => {
    upsertRoom(room);
    // `room:added` carries a Room, without the peer that names a direct room.
    if (room.visibility === 'direct') refreshRoomList();
  });
  socket.on('room:updated', (room) => {
    upsertRoom(room);
    // The settings toggles in the members panel show the room's current values.
    if (room.id === state.currentId) renderMembers();
  });
  socket.on('room:created', onRoomCreated);
  socket.on('room:removed', onRemoved);
  socket.on('typing', onTyping);
  socket.on('presence', onPresence);
  socket.on('user:updated', onUserUpdated);
  socket.on('server:notice', (notice) => {
    if (notice.code === 'session_ended') signOut('session_ended');
  });
  socket.on('connect_error', (error) => {
    // The socket stops after a refusal that retrying cannot fix, such as an expired token.
    if (socket.stopped) signOut(error.message);
  });
  socket.on('disconnect', () => setConnection('reconnecting'));
  socket.on('reconnecting', () => setConnection('reconnecting'));
  socket.open();
  window.clearInterval(roomListTimer);
  roomListTimer = window.setInterval(() => {
    if (state.connection === 'online') refreshRoomList();
  }, ROOM_LIST_REFRESH_MS);
}

/** @type {number | undefined} */
let roomListTimer;

onLangChange(() => {
  if (state.socket) rebuild();
});

// ---------------------------------------------------------------------------------------
// Layout

function buildLayout(/** @type {HTMLElement} */ root) {
  ui = /** @type {any} */ ({});
  ui.root = root;

  ui.banner = el('div', { className: 'banner', role: 'status', hidden: true });
  ui.profileButton = el('button', { type: 'button', className: 'profile-button', onclick: () => openProfile(state.me, profileActions) });
  ui.roomList = el('nav', { className: 'sidebar', 'aria-label': t('rooms.heading') });
  ui.chatHeader = el('header', { className: 'chat-header' });

  // The log is redrawn whole, so it is not a live region: `announcer` reads out each new
  // message from someone else instead.
  ui.log = el('div', { className: 'log', tabindex: 0 });
  ui.announcer = el('div', { className: 'visually-hidden', 'aria-live': 'polite' });
  ui.log.addEventListener('scroll', onLogScroll);
  ui.typing = el('div', { className: 'typing', 'aria-live': 'polite' });
  ui.alert = el('p', { className: 'error', role: 'alert' });
  ui.editNote = el('div', { className: 'edit-note', hidden: true });

  ui.composer = /** @type {HTMLTextAreaElement} */ (el('textarea', {
    id: 'composer', rows: 1, maxLength: 4000, 'aria-describedby': 'composer-hint',
  }));
  ui.composer.addEventListener('keydown', onComposerKey);
  ui.composer.addEventListener('input', onComposerInput);
  ui.sendButton = el('button', { type: 'submit', className: 'primary' });
  ui.composerLabel = el('label', { for: 'composer', className: 'visually-hidden' });
  ui.composerHint = el('span', { id: 'composer-hint', className: 'visually-hidden' });
  ui.form = el('form', { className: 'composer' }, [ui.composerLabel, ui.composerHint, ui.composer, ui.sendButton]);
  ui.form.addEventListener('submit', (event) => {
    event.preventDefault();
    submitComposer();
  });

  ui.members = el('aside', { className: 'members', hidden: true });
  ui.chat = el('section', { className: 'chat' }, [
    ui.chatHeader, ui.log, ui.announcer, ui.typing, ui.alert, ui.editNote, ui.form,
  ]);
  ui.topbar = el('header', { className: 'topbar' });
  root.replaceChildren(
    el('div', { className: 'shell' }, [
      ui.topbar,
      ui.banner,
      el('div', { className: 'main' }, [ui.roomList, ui.chat, ui.members]),
    ]),
  );
  rebuild();
}

/** Re-renders every part of the screen, e.g. after a language change. */
function rebuild() {
  document.title = t('app.title');
  ui.roomList.setAttribute('aria-label', t('rooms.heading'));
  ui.log.setAttribute('aria-label', t('chat.messages'));
  ui.topbar.replaceChildren(
    el('h1', {}, [t('app.title')]),
    languageSwitch(),
    ui.profileButton,
  );
  ui.composerLabel.textContent = t('chat.composer');
  ui.composerHint.textContent = t('chat.composer_hint');
  ui.composer.placeholder = t('chat.composer_hint');
  renderProfileButton();
  renderBanner();
  renderRoomList();
  renderChat();
  renderMembers();
}

function renderProfileButton() {
  const me = state.me;
  ui.profileButton.replaceChildren(
    ...(me ? [el('img', { className: 'avatar small', src: me.avatar_url, alt: '' }), nameNode(me.display_name)] : []),
    el('span', { className: 'visually-hidden' }, [t('profile.open')]),
  );
}

function setConnection(/** @type {typeof state.connection} */ value) {
  state.connection = value;
  renderBanner();
}

function renderBanner() {
  const text = state.connection === 'reconnecting' ? t('conn.reconnecting')
    : state.connection === 'connecting' ? t('conn.connecting') : '';
  ui.banner.textContent = text;
  ui.banner.hidden = !text;
  document.body.dataset.connection = state.connection;
}

// ---------------------------------------------------------------------------------------
// Session and catch-up

/** Handles `session`, the first event of every connection. */
async function onSession(/** @type {any} */ session) {
  state.me = session.user;
  rememberAvatar(session.user);
  renderProfileButton();
  const joined = new Set(/** @type {number[]} */ (session.rooms));
  for (const id of [...state.rooms.keys()]) {
    if (!joined.has(id)) state.rooms.delete(id);
  }
  await refreshRoomList();
  setConnection('online');

  const loadedRooms = [...state.rooms.values()].filter((room) => room.loaded);
  await catchUp(loadedRooms);
  if (state.currentId === null || !state.rooms.has(state.currentId)) {
    state.currentId = null;
    const first = state.rooms.has(session.lobby_id) ? session.lobby_id : [...state.rooms.keys()][0];
    if (first !== undefined) await openRoom(first, { focus: false });
  } else if (!state.rooms.get(state.currentId)?.loaded) {
    await openRoom(state.currentId, { focus: false });
  }
  resendPending();
  await countUnread();
}

async function refreshRoomList() {
  const reply = await request('rooms:list');
  if (!reply.ok) return;
  state.publicRooms = [];
  for (const entry of reply.data) {
    if (entry.role === null) state.publicRooms.push(entry);
    else upsertRoom(entry, false);
  }
  renderRoomList();
}

/**
 * Fetches every change since `lastRev` for rooms already on screen, following
 * `has_more` until each room is current.
 * @param {RoomState[]} rooms
 */
async function catchUp(rooms) {
  let pending = rooms.filter((room) => room.loaded);
  for (let round = 0; round < MAX_SYNC_ROUNDS && pending.length > 0; round++) {
    /** @type {Record<string, number>} */
    const revs = {};
    for (const room of pending) revs[String(room.entry.id)] = room.lastRev;
    const reply = await request('sync', { revs });
    if (!reply.ok) return;
    /** @type {RoomState[]} */
    const next = [];
    for (const page of reply.data) {
      const room = state.rooms.get(page.room_id);
      if (!room) continue;
      if (page.gone) {
        dropRoom(page.room_id);
        continue;
      }
      for (const message of page.messages) applyMessage(room, message);
      if (page.has_more && page.messages.length > 0) {
        room.lastRev = Math.max(room.lastRev, page.messages[page.messages.length - 1].rev);
        next.push(room);
      } else {
        room.lastRev = Math.max(room.lastRev, page.last_rev);
      }
    }
    pending = next;
  }
  renderRoomList();
  renderMessages();
}

/** Sends again the messages whose first attempt was cut off by the connection. */
function resendPending() {
  for (const room of state.rooms.values()) {
    for (const [clientId, pending] of room.pending) {
      if (pending.error === 'disconnected' || pending.error === 'timeout' || pending.error === 'shutting_down') {
        sendPending(room, clientId);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------
// Rooms

/** @param {any} entry @param {boolean} [render] */
function upsertRoom(entry, render = true) {
  rememberAvatar(entry.peer);
  let room = state.rooms.get(entry.id);
  if (room) {
    room.entry = { ...room.entry, ...entry };
  } else {
    room = {
      entry, messages: new Map(), pending: new Map(), loaded: false, loading: false,
      hasOlder: true, lastRev: 0, typing: new Map(), unread: new Map(), unreadMore: false,
    };
    state.rooms.set(entry.id, room);
    if (readSeq(entry.id) === undefined) markRead(entry.id, entry.last_seq ?? 0);
  }
  state.publicRooms = state.publicRooms.filter((r) => r.id !== entry.id);
  if (render) {
    renderRoomList();
    if (entry.id === state.currentId) renderChatHeader();
  }
}

/** Lists a public room that someone just created, unless the user is in it. @param {any} room */
function onRoomCreated(room) {
  if (state.rooms.has(room.id) || state.publicRooms.some((entry) => entry.id === room.id)) return;
  state.publicRooms.push(room);
  renderRoomList();
}

function onRemoved(/** @type {{ room_id: number }} */ event) {
  dropRoom(event.room_id);
  refreshRoomList();
}

function dropRoom(/** @type {number} */ id) {
  state.rooms.delete(id);
  if (state.currentId === id) {
    state.currentId = null;
    state.membersOpen = false;
    renderChat();
    renderMembers();
  }
  renderRoomList();
}

/** Returns the name shown for a room: the peer's display name for direct rooms. */
function roomTitle(/** @type {any} */ entry) {
  if (entry.visibility === 'direct') return entry.peer?.display_name ?? entry.name;
  return `#${entry.name}`;
}

/** Read positions per room (`seq`), remembered per user in localStorage. */
function readPositions() {
  try {
    return JSON.parse(localStorage.getItem(`confab.read.${state.me?.id}`) || '{}');
  } catch {
    return {};
  }
}

/** @param {number} roomId @returns {number | undefined} */
function readSeq(roomId) {
  return readPositions()[roomId];
}

function markRead(/** @type {number} */ roomId, /** @type {number} */ seq) {
  if (!state.me) return;
  const room = state.rooms.get(roomId);
  if (room) {
    for (const [id, unreadSeq] of room.unread) {
      if (unreadSeq <= seq) room.unread.delete(id);
    }
    if (room.unread.size === 0) room.unreadMore = false;
  }
  const positions = readPositions();
  if ((positions[roomId] ?? -1) >= seq) return;
  positions[roomId] = seq;
  localStorage.setItem(`confab.read.${state.me.id}`, JSON.stringify(positions));
}

/**
 * Notes a message for its room's unread count when someone else wrote it after the read
 * position. Join, leave and other notices, own messages and recalled messages do not count.
 * @param {RoomState} room @param {Message} message
 */
function noteUnread(room, message) {
  const unread = message.kind === 'text' && message.author_id !== state.me?.id && message.deleted_at === null;
  if (unread && message.seq > (readSeq(room.entry.id) ?? 0)) room.unread.set(message.id, message.seq);
  else room.unread.delete(message.id);
}

/**
 * Counts the unread messages of rooms whose messages after the read position are not in
 * memory, as after a reload. Reads at most one page per room, and `unreadMore` marks a room
 * with more unread messages than that page held.
 */
async function countUnread() {
  for (const room of [...state.rooms.values()]) {
    const after = readSeq(room.entry.id) ?? 0;
    if (room.loaded || (room.entry.last_seq ?? 0) <= after) continue;
    const reply = await request('room:history', { room_id: room.entry.id, after, limit: UNREAD_PAGE });
    if (!reply.ok || state.rooms.get(room.entry.id) !== room) continue;
    for (const message of reply.data.messages) noteUnread(room, message);
    room.unreadMore = reply.data.has_more && room.unread.size > 0;
  }
  renderRoomList();
}

/** Returns the badge text of a room's unread count, such as `3` or `100+`. */
function unreadLabel(/** @type {RoomState} */ room) {
  return room.unreadMore ? `${formatCount(room.unread.size)}+` : formatCount(room.unread.size);
}

function renderRoomList() {
  const mine = [...state.rooms.values()].filter((r) => r.entry.visibility !== 'direct');
  const direct = [...state.rooms.values()].filter((r) => r.entry.visibility === 'direct');
  const byName = (/** @type {RoomState} */ a, /** @type {RoomState} */ b) =>
    roomTitle(a.entry).localeCompare(roomTitle(b.entry));
  mine.sort(byName);
  direct.sort(byName);

  const roomItem = (/** @type {RoomState} */ room) => {
    const unread = room.entry.id === state.currentId ? 0 : room.unread.size;
    return el('li', {}, [
      el('button', {
        type: 'button',
        className: 'room-link',
        'aria-current': room.entry.id === state.currentId ? 'page' : undefined,
        'data-room': room.entry.id,
        onclick: () => openRoom(room.entry.id, { focus: true }),
      }, [
        el('bdi', { className: 'room-name' }, [roomTitle(room.entry)]),
        unread > 0 ? el('span', { className: 'badge', 'aria-label': t('rooms.unread', { count: unread }) }, [unreadLabel(room)]) : null,
      ]),
    ]);
  };

  const publicItems = state.publicRooms.map((entry) => el('li', { className: 'public-room' }, [
    el('bdi', { className: 'room-name' }, [roomTitle(entry)]),
    el('span', { className: 'muted' }, [t('rooms.members_count', { count: entry.member_count ?? 0 })]),
    el('button', {
      type: 'button',
      className: 'small',
      'aria-label': `${t('rooms.join')} ${roomTitle(entry)}`,
      onclick: () => joinRoom(entry.id),
    }, [t('rooms.join')]),
  ]));

  fill(ui.roomList, [
    el('button', { type: 'button', className: 'primary new-room', onclick: () => openCreateRoom(createRoom) }, [t('rooms.create')]),
    el('h2', {}, [t('rooms.mine')]),
    el('ul', { className: 'rooms mine' }, mine.map(roomItem)),
    direct.length ? el('h2', {}, [t('rooms.direct')]) : null,
    direct.length ? el('ul', { className: 'rooms direct' }, direct.map(roomItem)) : null,
    el('h2', {}, [t('rooms.public')]),
    publicItems.length
      ? el('ul', { className: 'rooms public' }, publicItems)
      : el('p', { className: 'muted' }, [t('rooms.none_public')]),
  ]);
}

/** @param {number} value */
function formatCount(value) {
  return value > 99 ? '99+' : new Intl.NumberFormat(document.documentElement.lang).format(value);
}

/** @param {number} id */
async function joinRoom(id) {
  const reply = await request('room:join', { room_id: id });
  if (!reply.ok) return showAlert(reply.error?.code);
  upsertRoom(reply.data);
  await openRoom(id, { focus: true });
}

/** @param {{ name: string, topic: string, visibility: string }} fields @returns {Promise<string | null>} */
async function createRoom(fields) {
  const reply = await request('room:create', fields);
  if (!reply.ok) return reply.error?.code ?? 'internal';
  upsertRoom(reply.data);
  await openRoom(reply.data.id, { focus: true });
  return null;
}

/** @param {number} userId */
async function openDirect(userId) {
  const reply = await request('dm:open', { user_id: userId });
  if (!reply.ok) return showAlert(reply.error?.code);
  upsertRoom(reply.data);
  await refreshRoomList();
  await openRoom(reply.data.id, { focus: true });
}

async function leaveCurrent() {
  if (state.currentId === null) return;
  const reply = await request('room:leave', { room_id: state.currentId });
  if (!reply.ok) return showAlert(reply.error?.code);
  dropRoom(state.currentId);
  await refreshRoomList();
}

/**
 * Shows a room, loading its newest page the first time.
 * @param {number} id @param {{ focus: boolean }} options
 */
async function openRoom(id, options) {
  const room = state.rooms.get(id);
  if (!room) return;
  if (state.currentId !== id) {
    state.currentId = id;
    state.editing = null;
    state.alert = '';
    state.members = [];
  }
  document.body.classList.add('show-chat');
  renderRoomList();
  renderChat();
  if (!room.loaded && !room.loading) {
    room.loading = true;
    const reply = await request('room:history', { room_id: id, limit: HISTORY_PAGE });
    room.loading = false;
    if (!reply.ok) return showAlert(reply.error?.code);
    for (const message of reply.data.messages) applyMessage(room, message);
    room.hasOlder = reply.data.has_more;
    room.lastRev = reply.data.last_rev;
    room.loaded = true;
    if (state.currentId === id) renderMessages({ stick: true });
  }
  markCurrentRead();
  // The member list also gives the authors' current avatar versions.
  loadMembers();
  if (options.focus) ui.composer.focus();
}

function markCurrentRead() {
  const room = state.currentId === null ? undefined : state.rooms.get(state.currentId);
  if (!room) return;
  markRead(room.entry.id, room.entry.last_seq ?? 0);
  renderRoomList();
}

// ---------------------------------------------------------------------------------------
// Messages

/**
 * Stores a message by id (replacing an older copy) and clears its pending entry.
 * @param {RoomState} room @param {Message} message
 */
function applyMessage(room, message) {
  const known = room.messages.get(message.id);
  if (known && known.rev > message.rev) return;
  room.messages.set(message.id, message);
  room.entry.last_seq = Math.max(room.entry.last_seq ?? 0, message.seq);
  noteUnread(room, message);
  if (message.client_msg_id && message.author_id === state.me?.id) {
    room.pending.delete(message.client_msg_id);
  }
}

/** System events after which the member and ban lists of the room may differ. */
const MEMBERSHIP_KINDS = new Set(['join', 'leave', 'kick', 'ban', 'unban']);

/** Handles `message:new` and `message:edited`. @param {Message} message */
function applyLive(message) {
  const room = state.rooms.get(message.room_id);
  if (!room) return;
  const atBottom = isAtBottom();
  const known = room.messages.has(message.id);
  applyMessage(room, message);
  room.typing.delete(message.author_id ?? -1);
  if (message.room_id === state.currentId && state.membersOpen && MEMBERSHIP_KINDS.has(message.kind)) {
    loadMembers();
  }
  if (message.room_id === state.currentId) {
    renderMessages({ stick: atBottom || message.author_id === state.me?.id });
    if (!known && message.kind === 'text' && message.author_id !== state.me?.id) {
      ui.announcer.textContent = t('chat.new_message', { name: message.author_name, body: message.body });
    }
    if (document.visibilityState === 'visible') markCurrentRead();
  } else {
    renderRoomList();
  }
}

/** @param {{ room_id: number, id: number, rev: number, deleted_by: number, deleted_at: number }} event */
function onDeleted(event) {
  const room = state.rooms.get(event.room_id);
  // A recalled message no longer counts as unread, even in a room not loaded yet.
  if (room?.unread.delete(event.id)) renderRoomList();
  const known = room?.messages.get(event.id);
  if (!room || !known) return;
  applyMessage(room, { ...known, body: '', rev: event.rev, deleted_at: event.deleted_at, deleted_by: event.deleted_by });
  if (event.room_id === state.currentId) renderMessages();
}

function submitComposer() {
  const room = state.currentId === null ? undefined : state.rooms.get(state.currentId);
  const body = ui.composer.value;
  if (!room || !body.trim()) return;
  if (state.editing !== null) {
    saveEdit(state.editing, body);
    return;
  }
  const clientId = crypto.randomUUID();
  room.pending.set(clientId, { body, error: null, ackId: null, createdAt: Date.now() });
  ui.composer.value = '';
  renderMessages({ stick: true });
  sendPending(room, clientId);
}

/** Sends (or resends, with the same client_msg_id) one pending message. */
async function sendPending(/** @type {RoomState} */ room, /** @type {string} */ clientId) {
  const pending = room.pending.get(clientId);
  if (!pending) return;
  pending.error = null;
  renderMessages();
  const reply = await request('message:send', { room_id: room.entry.id, body: pending.body, client_msg_id: clientId });
  if (!room.pending.has(clientId)) return;
  if (reply.ok) {
    pending.ackId = reply.data.id;
    // The server queues `message:new` before the acknowledgement, so the message is
    // normally here already; otherwise it shows as sent until the event arrives.
    if (room.messages.has(reply.data.id)) room.pending.delete(clientId);
  } else {
    pending.error = reply.error?.code ?? 'internal';
  }
  if (room.entry.id === state.currentId) renderMessages();
}

function startEdit(/** @type {Message} */ message) {
  state.editing = message.id;
  ui.composer.value = message.body;
  ui.composer.focus();
  renderComposerMode();
}

function cancelEdit() {
  state.editing = null;
  ui.composer.value = '';
  renderComposerMode();
}

async function saveEdit(/** @type {number} */ messageId, /** @type {string} */ body) {
  const reply = await request('message:edit', { message_id: messageId, body });
  if (!reply.ok) return showAlert(reply.error?.code);
  const room = state.rooms.get(reply.data.room_id);
  if (room) applyMessage(room, reply.data);
  cancelEdit();
  renderMessages();
}

async function recall(/** @type {Message} */ message) {
  const reply = await request('message:delete', { message_id: message.id });
  if (!reply.ok) return showAlert(reply.error?.code);
  const room = state.rooms.get(message.room_id);
  if (room) applyMessage(room, reply.data);
  if (state.editing === message.id) cancelEdit();
  renderMessages();
}

/** Enter sends, Shift+Enter adds a line; Enter that confirms an IME candidate never sends. */
function onComposerKey(/** @type {KeyboardEvent} */ event) {
  if (event.key === 'Escape' && state.editing !== null) {
    event.preventDefault();
    cancelEdit();
    return;
  }
  if (event.key !== 'Enter' || event.shiftKey) return;
  // keyCode 229 marks keys handled by an input method in browsers that end the
  // composition before the keydown (Safari).
  if (event.isComposing || event.keyCode === 229) return;
  event.preventDefault();
  submitComposer();
}

function onComposerInput() {
  const now = Date.now();
  if (state.currentId === null || !ui.composer.value.trim() || state.editing !== null) return;
  if (now - state.lastTypingSent < TYPING_SEND_EVERY_MS) return;
  state.lastTypingSent = now;
  state.socket?.emit('typing', { room_id: state.currentId });
}

/** @param {{ room_id: number, user_id: number, display_name: string }} event */
function onTyping(event) {
  if (event.user_id === state.me?.id) return;
  const room = state.rooms.get(event.room_id);
  if (!room) return;
  room.typing.set(event.user_id, { name: event.display_name, until: Date.now() + TYPING_SHOWN_MS });
  if (event.room_id === state.currentId) renderTyping();
  window.setTimeout(renderTyping, TYPING_SHOWN_MS + 50);
}

/** @param {{ room_id: number, user_id: number, online: boolean, online_count: number }} event */
function onPresence(event) {
  const room = state.rooms.get(event.room_id);
  if (!room) return;
  room.entry.online_count = event.online_count;
  if (event.room_id !== state.currentId) return;
  renderChatHeader();
  const member = state.members.find((m) => m.user.id === event.user_id);
  if (member) {
    member.online = event.online;
    renderMembers();
  } else if (state.membersOpen) {
    loadMembers();
  }
}

/**
 * Handles `user:updated`: someone, perhaps this user elsewhere, changed their display name
 * or avatar. Members, direct room names and avatars show it at once; messages keep the
 * name they were sent under. The event comes once per shared room, and applying it again
 * changes nothing.
 * @param {{ user: any }} event
 */
function onUserUpdated(event) {
  const user = event.user;
  if (user.id === state.me?.id) {
    state.me = user;
    renderProfileButton();
  }
  let membersChanged = false;
  for (const member of state.members) {
    if (member.user.id === user.id) {
      member.user = user;
      membersChanged = true;
    }
  }
  let directChanged = false;
  for (const room of state.rooms.values()) {
    if (room.entry.peer?.id === user.id) {
      room.entry.peer = user;
      directChanged = true;
    }
  }
  if (membersChanged) renderMembers();
  if (directChanged) {
    renderRoomList();
    renderChatHeader();
  }
  if (rememberAvatar(user)) renderMessages();
}

async function onLogScroll() {
  const room = state.currentId === null ? undefined : state.rooms.get(state.currentId);
  if (!room || !room.loaded || room.loading || !room.hasOlder) return;
  if (ui.log.scrollTop > LOAD_OLDER_MARGIN_PX) return;
  const oldest = Math.min(...[...room.messages.values()].map((m) => m.seq));
  if (!Number.isFinite(oldest)) return;
  room.loading = true;
  renderLoadingMarker(room);
  const reply = await request('room:history', { room_id: room.entry.id, before: oldest, limit: HISTORY_PAGE });
  room.loading = false;
  if (!reply.ok) {
    renderLoadingMarker(room);
    return showAlert(reply.error?.code);
  }
  for (const message of reply.data.messages) applyMessage(room, message);
  room.hasOlder = reply.data.has_more;
  if (room.entry.id !== state.currentId) return;
  // Keep the messages the reader was looking at in place while older ones go above.
  const fromBottom = ui.log.scrollHeight - ui.log.scrollTop;
  renderMessages();
  ui.log.scrollTop = ui.log.scrollHeight - fromBottom;
}

function isAtBottom() {
  return ui.log.scrollHeight - ui.log.scrollTop - ui.log.clientHeight < 40;
}

// ---------------------------------------------------------------------------------------
// Rendering the chat view

function renderChat() {
  const room = state.currentId === null ? undefined : state.rooms.get(state.currentId);
  ui.chat.classList.toggle('empty', !room);
  ui.form.hidden = !room;
  renderChatHeader();
  renderMessages({ stick: true });
  renderComposerMode();
  renderAlert();
}

function renderChatHeader() {
  const room = state.currentId === null ? undefined : state.rooms.get(state.currentId);
  if (!room) {
    ui.chatHeader.replaceChildren(el('p', { className: 'muted' }, [t('chat.empty')]));
    return;
  }
  const entry = room.entry;
  const online = entry.online_count ?? 0;
  fill(ui.chatHeader, [
    el('button', {
      type: 'button', className: 'back', 'aria-label': t('chat.back'),
      onclick: () => document.body.classList.remove('show-chat'),
    }, ['‹']),
    el('div', { className: 'title' }, [
      el('h2', {}, [el('bdi', {}, [roomTitle(entry)])]),
      entry.topic ? el('p', { className: 'topic' }, [el('bdi', {}, [entry.topic])]) : null,
    ]),
    entry.moderated
      ? el('span', { className: 'badge', title: t('chat.moderated_hint') }, [t('chat.moderated')])
      : null,
    el('button', {
      type: 'button', className: 'online-button', 'aria-expanded': String(state.membersOpen),
      onclick: toggleMembers,
    }, [el('span', { className: 'dot', 'aria-hidden': 'true' }), t('chat.online', { count: online })]),
    entry.visibility !== 'direct'
      ? el('button', { type: 'button', className: 'small', onclick: leaveCurrent }, [t('chat.leave')])
      : null,
  ]);
}

function renderLoadingMarker(/** @type {RoomState} */ room) {
  const marker = ui.log.querySelector('.log-start');
  if (marker) marker.textContent = logStartText(room);
}

/** Returns the line above the oldest message: loading, the room's beginning, or nothing. */
function logStartText(/** @type {RoomState} */ room) {
  if (room.loading) return t('chat.loading_older');
  if (room.loaded && !room.hasOlder) return t('chat.beginning');
  return '';
}

/** Redraws the current room's messages. `stick` keeps the view at the newest message. */
function renderMessages(/** @type {{ stick?: boolean }} */ options = {}) {
  const room = state.currentId === null ? undefined : state.rooms.get(state.currentId);
  if (!room) {
    ui.log.replaceChildren();
    return;
  }
  const stick = options.stick || isAtBottom();
  const messages = [...room.messages.values()].sort((a, b) => a.seq - b.seq);
  const role = room.entry.role;
  /** @type {import('./message-view.js').MessageView} */
  const view = {
    meId: state.me?.id ?? null,
    canModerate: role === 'owner' || role === 'admin',
    nameOf: (userId) => nameOf(room, userId),
    avatarOf,
    onEdit: startEdit,
    onRecall: recall,
  };
  const items = messages.map((message) => messageItem(message, view));
  for (const [clientId, pending] of room.pending) {
    if (pending.ackId !== null && room.messages.has(pending.ackId)) continue;
    items.push(pendingItem(state.me, clientId, pending, () => sendPending(room, clientId)));
  }
  const start = el('p', { className: 'log-start muted' }, [
    logStartText(room),
  ]);
  ui.log.replaceChildren(start, el('ol', { className: 'messages' }, items));
  if (stick) ui.log.scrollTop = ui.log.scrollHeight;
  renderTyping();
}

/**
 * Returns the address of a user's avatar. A `User` seen in the session, a room's peer or a
 * member list gives the versioned address, which the browser may cache for good. Other
 * authors get the address without a version, which the server marks `no-cache`.
 * @param {number} userId
 */
function avatarOf(userId) {
  return state.avatars.get(userId) ?? `/api/v1/users/${userId}/avatar`;
}

/**
 * Remembers the avatar address of a user, reporting whether it changed.
 * @param {any} user a `User`
 */
function rememberAvatar(user) {
  if (!user || state.avatars.get(user.id) === user.avatar_url) return false;
  state.avatars.set(user.id, user.avatar_url);
  return true;
}

/**
 * Finds a user's display name among the room's messages and members, for notices that
 * name someone other than the author (an admin who recalled a message).
 * @param {RoomState} room @param {number | null} userId @returns {string | null}
 */
function nameOf(room, userId) {
  if (userId === null) return null;
  if (userId === state.me?.id) return state.me.display_name;
  const member = state.members.find((m) => m.user.id === userId);
  if (member) return member.user.display_name;
  for (const message of room.messages.values()) {
    if (message.author_id === userId) return message.author_name;
  }
  return null;
}

function renderTyping() {
  const room = state.currentId === null ? undefined : state.rooms.get(state.currentId);
  const now = Date.now();
  const names = [];
  for (const [userId, hint] of room?.typing ?? []) {
    if (hint.until < now) room?.typing.delete(userId);
    else names.push(hint.name);
  }
  if (names.length === 0) ui.typing.replaceChildren();
  else if (names.length === 1) ui.typing.replaceChildren(...textWithName('chat.typing_one', names[0]));
  else ui.typing.replaceChildren(t('chat.typing_many', { count: names.length }));
}

function renderComposerMode() {
  const editing = state.editing !== null;
  ui.editNote.hidden = !editing;
  ui.editNote.replaceChildren(
    t('chat.editing'), ' ',
    el('button', { type: 'button', className: 'small', onclick: cancelEdit }, [t('dialog.cancel')]),
  );
  ui.sendButton.textContent = editing ? t('chat.save') : t('chat.send');
}

function showAlert(/** @type {string | undefined} */ code) {
  state.alert = code ?? 'internal';
  renderAlert();
}

function renderAlert() {
  ui.alert.textContent = state.alert ? errorText(state.alert) : '';
}

// ---------------------------------------------------------------------------------------
// Members

function toggleMembers() {
  state.membersOpen = !state.membersOpen;
  renderChatHeader();
  renderMembers();
  if (state.membersOpen) loadMembers();
}

async function loadMembers() {
  const id = state.currentId;
  if (id === null) return;
  const reply = await request('room:members', { room_id: id });
  if (!reply.ok || id !== state.currentId) return;
  state.members = reply.data;
  state.bans = [];
  if (isModerator(state.rooms.get(id)?.entry.role)) {
    const bans = await request('room:bans', { room_id: id });
    if (id !== state.currentId) return;
    if (bans.ok) state.bans = bans.data;
  }
  let changed = false;
  for (const member of state.members) changed = rememberAvatar(member.user) || changed;
  if (changed) renderMessages();
  renderMembers();
}

function renderMembers() {
  ui.members.hidden = !state.membersOpen || state.currentId === null;
  if (ui.members.hidden) return;
  const entry = state.currentId === null ? undefined : state.rooms.get(state.currentId)?.entry;
  const myRole = entry?.role;
  const moderating = isModerator(myRole) && entry?.visibility !== 'direct';
  const members = [...state.members].sort((a, b) =>
    Number(b.online) - Number(a.online) || a.user.display_name.localeCompare(b.user.display_name));
  fill(ui.members, [
    el('div', { className: 'members-top' }, [
      el('h2', {}, [t('members.heading')]),
      el('button', { type: 'button', className: 'small', onclick: toggleMembers }, [t('dialog.close')]),
    ]),
    moderating && entry ? roomSettingsForm(entry) : null,
    el('ul', {}, members.map((member) => el('li', { className: member.online ? 'member online' : 'member' }, [
      el('img', { className: 'avatar small', alt: '', src: member.user.avatar_url }),
      nameNode(member.user.display_name),
      member.user.id === state.me?.id ? el('span', { className: 'muted' }, [t('members.you')]) : null,
      el('span', { className: 'role muted' }, [t(`role.${member.role}`)]),
      el('span', { className: 'presence' }, [member.online ? t('members.online') : t('members.offline')]),
      member.user.id !== state.me?.id && member.user.kind === 'registered' && state.me?.kind === 'registered'
        ? el('button', { type: 'button', className: 'small', onclick: () => openDirect(member.user.id) }, [t('members.direct')])
        : null,
      moderating && member.user.id !== state.me?.id && outranks(myRole, member.role)
        ? el('button', {
          type: 'button', className: 'small danger', onclick: () => banMember(member.user),
        }, [t('members.ban')])
        : null,
    ]))),
    moderating ? banList() : null,
  ]);
}

/** Reports whether a role moderates its room. @param {string | null | undefined} role */
function isModerator(role) {
  return role === 'owner' || role === 'admin';
}

const ROLE_RANK = { owner: 3, admin: 2, member: 1, guest: 0 };

/** Reports whether `role` may ban or remove someone holding `target`, as the server rules. */
function outranks(/** @type {string | null | undefined} */ role, /** @type {string} */ target) {
  const mine = ROLE_RANK[/** @type {keyof typeof ROLE_RANK} */ (role ?? 'guest')] ?? 0;
  const theirs = ROLE_RANK[/** @type {keyof typeof ROLE_RANK} */ (target)] ?? 0;
  return isModerator(role) && mine > theirs;
}

/** Builds the moderators' toggles for the room's settings. @param {any} entry */
function roomSettingsForm(entry) {
  const toggle = (/** @type {'moderated' | 'topic_locked'} */ setting) => el('label', { className: 'setting' }, [
    el('input', {
      type: 'checkbox', name: setting, checked: Boolean(entry[setting]),
      onchange: (/** @type {Event} */ event) => {
        const input = /** @type {HTMLInputElement} */ (event.target);
        updateSetting(entry.id, setting, input.checked, input);
      },
    }),
    t(`settings.${setting}`),
  ]);
  return el('fieldset', { className: 'room-settings' }, [
    el('legend', {}, [t('settings.heading')]),
    toggle('moderated'),
    toggle('topic_locked'),
  ]);
}

/**
 * Sends one setting change; on failure the checkbox goes back and the error is shown.
 * @param {number} roomId @param {'moderated' | 'topic_locked'} setting @param {boolean} value
 * @param {HTMLInputElement} input
 */
async function updateSetting(roomId, setting, value, input) {
  const reply = await request('room:settings', { room_id: roomId, [setting]: value });
  if (!reply.ok) {
    input.checked = !value;
    return showAlert(reply.error?.code);
  }
  upsertRoom(reply.data);
}

/** Lists the room's bans with an unban button each, for moderators. */
function banList() {
  return el('section', { className: 'bans' }, [
    el('h3', {}, [t('bans.heading')]),
    state.bans.length === 0
      ? el('p', { className: 'muted' }, [t('bans.none')])
      : el('ul', {}, state.bans.map((ban) => el('li', { className: 'member' }, [
        nameNode(ban.user.display_name),
        ban.reason ? el('span', { className: 'muted' }, [el('bdi', {}, [ban.reason])]) : null,
        el('button', { type: 'button', className: 'small', onclick: () => unbanUser(ban.user.id) }, [t('bans.lift')]),
      ]))),
  ]);
}

/** Asks for a reason, then bans a member from the current room. @param {any} user */
async function banMember(user) {
  const id = state.currentId;
  if (id === null) return;
  const reason = window.prompt(t('members.ban_prompt', { name: user.display_name }), '');
  // Cancel returns null; an empty reason still bans.
  if (reason === null) return;
  const reply = await request('room:ban', { room_id: id, user_id: user.id, reason });
  if (!reply.ok) return showAlert(reply.error?.code);
  loadMembers();
}

/** Lifts a ban in the current room. @param {number} userId */
async function unbanUser(userId) {
  const id = state.currentId;
  if (id === null) return;
  const reply = await request('room:unban', { room_id: id, user_id: userId });
  if (!reply.ok) return showAlert(reply.error?.code);
  loadMembers();
}

// ---------------------------------------------------------------------------------------
// Profile

const profileActions = {
  /** @param {any} user */
  updated(user) {
    state.me = user;
    renderProfileButton();
    if (rememberAvatar(user)) renderMessages();
  },
  async logout() {
    try {
      await api('POST', '/auth/logout');
    } catch (err) {
      // Only the server can clear the HttpOnly session cookie, so a failed request leaves
      // the user signed in and says why. A 401 means the session has already ended.
      if (!(err instanceof ApiError && err.status === 401)) {
        showAlert(err instanceof ApiError ? err.code : 'internal');
        return;
      }
    }
    signOut();
  },
};

/**
 * Emits an event over the current socket and resolves with its acknowledgement.
 * @param {string} event @param {any} [data] @returns {Promise<import('./socket.js').AckReply>}
 */
function request(event, data) {
  if (!state.socket) return Promise.resolve({ ok: false, error: { code: 'disconnected' } });
  return state.socket.request(event, data);
}

document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible' && state.socket) markCurrentRead();
});
