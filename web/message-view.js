// The elements of the message log: text messages, pending sends and system notices.
// Message bodies and names become text nodes and `<bdi>` elements only.

import { el, linkify, nameNode } from './dom.js';
import { errorText, formatFullTime, formatTime, t } from './i18n.js';

/**
 * Context of a message element: the reader, their rights in the room, and callbacks.
 * @typedef {{ meId: number | null, canModerate: boolean,
 *   nameOf: (userId: number | null) => string | null,
 *   avatarOf: (userId: number) => string,
 *   onEdit: (message: import('./chat.js').Message) => void,
 *   onRecall: (message: import('./chat.js').Message) => void }} MessageView
 */

/**
 * Builds the list item of a stored message or system event.
 * @param {import('./chat.js').Message} message @param {MessageView} view
 */
export function messageItem(message, view) {
  const own = message.author_id !== null && message.author_id === view.meId;
  const time = el('time', {
    datetime: new Date(message.created_at).toISOString(),
    title: formatFullTime(message.created_at),
  }, [formatTime(message.created_at)]);

  if (message.kind !== 'text' || message.deleted_at !== null) {
    return el('li', { className: 'msg system', 'data-id': message.id, 'data-seq': message.seq }, [
      el('span', { className: 'system-text' }, systemText(message, view.nameOf)),
      time,
    ]);
  }

  // Members recall their own messages; owners and admins recall anyone's.
  const actions = el('div', { className: 'actions' }, [
    own ? el('button', { type: 'button', className: 'small', onclick: () => view.onEdit(message) }, [t('msg.edit')]) : null,
    own || view.canModerate
      ? el('button', { type: 'button', className: 'small', onclick: () => view.onRecall(message) }, [t('msg.recall')])
      : null,
  ]);
  const avatar = message.author_id !== null ? view.avatarOf(message.author_id) : '/assets/icon.svg';
  return el('li', { className: own ? 'msg own' : 'msg', 'data-id': message.id, 'data-seq': message.seq }, [
    el('img', { className: 'avatar', alt: '', loading: 'lazy', src: avatar }),
    el('div', { className: 'bubble' }, [
      el('div', { className: 'meta' }, [
        nameNode(message.author_name || t('msg.deleted_user')),
        time,
        message.edited_at !== null ? el('span', { className: 'edited muted' }, [t('msg.edited')]) : null,
        actions.childElementCount ? actions : null,
      ]),
      el('div', { className: 'text' }, [linkify(message.body)]),
    ]),
  ]);
}

/**
 * Builds the list item of a message sent but not yet stored: "sending", or the reason it
 * failed with a retry button.
 * @param {any} me the signed-in user
 * @param {string} clientId
 * @param {import('./chat.js').Pending} pending
 * @param {() => void} onRetry
 */
export function pendingItem(me, clientId, pending, onRetry) {
  const status = pending.error
    ? el('span', { className: 'status failed', role: 'alert' }, [
      t('msg.failed', { reason: errorText(pending.error) }),
      ' ',
      el('button', { type: 'button', className: 'small', onclick: onRetry }, [t('msg.retry')]),
    ])
    : el('span', { className: 'status muted' }, [t('msg.sending')]);
  return el('li', { className: pending.error ? 'msg own pending failed' : 'msg own pending', 'data-client-id': clientId }, [
    el('img', { className: 'avatar', alt: '', src: me?.avatar_url ?? '/assets/icon.svg' }),
    el('div', { className: 'bubble' }, [
      el('div', { className: 'meta' }, [nameNode(me?.display_name ?? ''), status]),
      el('div', { className: 'text' }, [linkify(pending.body)]),
    ]),
  ]);
}

/**
 * Builds the sentence of a system event or recall, with names as isolated nodes.
 * @param {import('./chat.js').Message} message
 * @param {(userId: number | null) => string | null} nameOf
 * @returns {Node[]}
 */
function systemText(message, nameOf) {
  const author = message.author_name || t('msg.deleted_user');
  /** @type {Record<string, Node>} */
  const parts = {
    name: nameNode(author),
    target: nameNode(message.target_name ?? ''),
    topic: el('bdi', {}, [message.body]),
  };
  let key = `msg.${message.kind}`;
  if (message.deleted_at !== null) {
    const remover = message.deleted_by === message.author_id ? author : nameOf(message.deleted_by);
    key = remover === null ? 'msg.recalled_unnamed' : 'msg.recalled';
    parts.name = nameNode(remover ?? '');
  } else if (message.kind === 'topic' && !message.body) {
    key = 'msg.topic_cleared';
  } else if (message.kind === 'ban' && message.body) {
    key = 'msg.ban_reason';
  } else if (message.kind === 'settings') {
    parts.changes = document.createTextNode(settingsText(message.body));
  }
  return fillTemplate(t(key), parts);
}

/**
 * Translates the body of a `settings` event, such as `+moderated -topic_locked`, into a
 * list of sentences; unknown items are skipped, as newer servers may add settings.
 * @param {string} body @returns {string}
 */
function settingsText(body) {
  return body.split(/\s+/)
    .filter((item) => /^[+-](moderated|topic_locked)$/.test(item))
    .map((item) => t(`settings.${item.slice(1)}_${item[0] === '+' ? 'on' : 'off'}`))
    .join(t('settings.separator'));
}

/**
 * Builds a translated sentence with one name in it, such as "{name} is typing…".
 * @param {string} key @param {string} name @returns {Node[]}
 */
export function textWithName(key, name) {
  return fillTemplate(t(key), { name: nameNode(name) });
}

/**
 * Splits a translated template at its `{placeholders}` and puts the given nodes there.
 * @param {string} template @param {Record<string, Node>} parts @returns {Node[]}
 */
function fillTemplate(template, parts) {
  /** @type {Node[]} */
  const nodes = [];
  let last = 0;
  for (const match of template.matchAll(/\{(\w+)\}/g)) {
    const index = match.index ?? 0;
    nodes.push(document.createTextNode(template.slice(last, index)));
    nodes.push(parts[match[1]] ?? document.createTextNode(match[0]));
    last = index + match[0].length;
  }
  nodes.push(document.createTextNode(template.slice(last)));
  return nodes;
}
