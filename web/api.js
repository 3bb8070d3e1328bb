// REST calls under /api/v1 with the session's bearer token. A bearer token needs no CSRF
// token, and the strict Content-Security-Policy keeps foreign script from reading it.

import { lang } from './i18n.js';

const TOKEN_KEY = 'confab.token';

export class ApiError extends Error {
  /** @param {string} code @param {number} status */
  constructor(code, status) {
    super(code);
    this.code = code;
    this.status = status;
  }
}

export function storedToken() {
  return localStorage.getItem(TOKEN_KEY);
}

/** @param {string | null} token */
export function storeToken(token) {
  if (token) localStorage.setItem(TOKEN_KEY, token);
  else localStorage.removeItem(TOKEN_KEY);
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
  const token = storedToken();
  if (token) headers.Authorization = `Bearer ${token}`;
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
    response = await fetch(`/api/v1${path}`, { method, headers, body, credentials: 'omit' });
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
