// DOM helpers. User-supplied text only ever becomes text nodes: nothing here parses HTML.

/** Protocols that become clickable links; anything else stays plain text. */
const LINK_PROTOCOLS = new Set(['http:', 'https:', 'mailto:']);
const LINK_PATTERN = /\b(?:https?:\/\/|mailto:)[^\s<>"']+/gi;
/** Trailing punctuation that usually ends a sentence rather than a URL. */
const TRAILING_PUNCTUATION = /[.,;:!?)\]}'"。，；：！？）】」]+$/u;

/**
 * Creates an element. `props` sets properties (className, type, hidden, …) except keys
 * starting with `aria-`, `data-` or named in ATTRIBUTES, which become attributes.
 * Children that are strings become text nodes.
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Record<string, any>} [props]
 * @param {(Node | string | null | undefined | false)[]} [children]
 * @returns {HTMLElementTagNameMap[K]}
 */
export function el(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('aria-') || key.startsWith('data-') || ATTRIBUTES.has(key)) {
      node.setAttribute(key, value === true ? '' : String(value));
    } else if (key.startsWith('on') && typeof value === 'function') {
      node.addEventListener(key.slice(2), value);
    } else {
      /** @type {any} */ (node)[key] = value;
    }
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(typeof child === 'string' ? document.createTextNode(child) : child);
  }
  return node;
}

const ATTRIBUTES = new Set(['role', 'for', 'datetime', 'autocomplete', 'tabindex', 'dir']);

/** Wraps a user's name in `<bdi>`, so bidi controls inside cannot reorder the text around it. */
export function nameNode(/** @type {string} */ name) {
  return el('bdi', { className: 'name' }, [name]);
}

/**
 * Turns message text into text nodes and links. Only http, https and mailto URLs become
 * `<a>` elements, and their href is the parsed URL, never raw input.
 * @param {string} text @returns {DocumentFragment}
 */
export function linkify(text) {
  const fragment = document.createDocumentFragment();
  let last = 0;
  for (const match of text.matchAll(LINK_PATTERN)) {
    const start = match.index ?? 0;
    const candidate = match[0].replace(TRAILING_PUNCTUATION, '');
    const url = safeUrl(candidate);
    if (!url) continue;
    fragment.append(document.createTextNode(text.slice(last, start)));
    fragment.append(
      el('a', { href: url.href, target: '_blank', rel: 'noopener noreferrer nofollow' }, [candidate]),
    );
    last = start + candidate.length;
  }
  fragment.append(document.createTextNode(text.slice(last)));
  return fragment;
}

/** @param {string} candidate @returns {URL | null} */
function safeUrl(candidate) {
  try {
    const url = new URL(candidate);
    return LINK_PROTOCOLS.has(url.protocol) ? url : null;
  } catch {
    return null;
  }
}

/** Replaces the children of `node`, skipping absent ones. */
export function fill(/** @type {Element} */ node, /** @type {(Node | string | null | undefined | false)[]} */ children) {
  node.replaceChildren(...children.filter((child) => child !== null && child !== undefined && child !== false));
}
