// REST calls under /api/v1, authenticated by the server's session cookie. The cookie is
// HttpOnly, so script on the page never sees the session token. Writes echo the CSRF
// token from the `confab_csrf` cookie in `X-CSRF-Token` (double-submit), which a page
// of another site cannot read.

import { lang } from './i18n.js';

const CSRF_COOKIE = 'confab_csrf';

/** Methods that need the CSRF token when authenticated by cookie. */
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

export class ApiError extends Error {
  /** @param {string} code @param {number} status */
  constructor(code, status) {
    super(code);
    this.code = code;
    this.status = status;
  }
}

/** Returns the CSRF token of the current session, or null when signed out. */
export function csrfToken() {
  for (const part of document.cookie.split(';')) {
    const [name, ...value] = part.trim().split('=');
    if (name === CSRF_COOKIE && value.length) return decodeURIComponent(value.join('='));
  }
  return null;
}

/**
 * Returns whether this browser has a session. The server sets and clears the CSRF
 * cookie together with the session cookie, with the same lifetime.
 */
export function hasSession() {
  return Boolean(csrfToken());
}

/**
 * Drops the CSRF cookie after the session ended on the server (logout, password change,
 * expiry), so a reload shows the sign-in screen. The HttpOnly session cookie stays until
 * the server clears or replaces it, but the server no longer accepts its token.
 */
export function forgetSession() {
  document.cookie = `${CSRF_COOKIE}=; Path=/; Max-Age=0; SameSite=Lax`;
}

/**
 * Calls the REST API and returns the decoded JSON body (null for 204). Fails with an
 * ApiError whose code is the server's error code, or `network` when no response came.
 * @param {string} method @param {string} path
 * @param {{ json?: unknown, body?: Blob, contentType?: string }} [options]
 */
export async function api(method, path, options = {}) {
  /** @type {Record<string, string>} */
  const headers = { 'Accept-Language': lang() };
  const csrf = csrfToken();
  if (csrf && !SAFE_METHODS.has(method)) headers['X-CSRF-Token'] = csrf;
  /** @type {BodyInit | undefined} */
  let body;
  if (options.json !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(options.json);
  } else if (options.body) {
    headers['Content-Type'] = options.contentType || 'application/octet-stream';
    body = options.body;
  }

  let response;
  try {
    response = await fetch(`/api/v1${path}`, { method, headers, body, credentials: 'same-origin' });
  } catch {
    throw new ApiError('network', 0);
  }

  if (response.status === 204) return null;
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    throw new ApiError(data?.error?.code ?? 'internal', response.status);
  }
  return data;
}
