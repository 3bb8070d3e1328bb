// Entry point: the sign-in screen, then the chat screen once the browser has a session.

import { api, ApiError, forgetSession, hasSession } from './api.js';
import { el } from './dom.js';
import { errorText, lang, onLangChange, setLang, t } from './i18n.js';
import { startChat } from './chat.js';

const root = /** @type {HTMLElement} */ (document.getElementById('app'));

/** Builds the language switch shown on every screen. */
export function languageSwitch() {
  const select = el('select', { className: 'lang-switch', 'aria-label': t('lang.switch') }, [
    el('option', { value: 'zh-CN' }, ['简体中文']),
    el('option', { value: 'en' }, ['English']),
  ]);
  select.value = lang();
  select.addEventListener('change', () => setLang(/** @type {any} */ (select.value)));
  return select;
}

/** Tab of the sign-in screen on display, kept across language changes. */
let authTab = 'login';
/** The last sign-in error code, kept so a language change re-translates it. */
let authError = '';

function renderAuth() {
  document.title = t('app.title');
  const tabs = /** @type {const} */ (['login', 'register', 'guest']);
  const tabList = el('div', { className: 'tabs', role: 'tablist' },
    tabs.map((name) => el('button', {
      type: 'button',
      role: 'tab',
      id: `tab-${name}`,
      'aria-selected': String(name === authTab),
      'aria-controls': 'auth-form',
      // Roving tabindex: Tab reaches the selected tab, the arrow keys move between tabs.
      tabindex: name === authTab ? 0 : -1,
      onclick: () => { authTab = name; authError = ''; renderAuth(); },
    }, [t(`auth.tab.${name}`)])));
  tabList.addEventListener('keydown', (event) => {
    const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
    if (!step) return;
    event.preventDefault();
    authTab = tabs[(tabs.indexOf(/** @type {any} */ (authTab)) + step + tabs.length) % tabs.length];
    authError = '';
    renderAuth();
    document.getElementById(`tab-${authTab}`)?.focus();
  });

  const fields = [];
  if (authTab !== 'guest') {
    fields.push(labelled('auth.username', el('input', {
      name: 'username', required: true, autocomplete: 'username', maxLength: 32,
    })));
    fields.push(labelled('auth.password', el('input', {
      name: 'password', type: 'password', required: true, minLength: 8, maxLength: 128,
      autocomplete: authTab === 'login' ? 'current-password' : 'new-password',
    })));
  }
  if (authTab === 'register') {
    fields.push(labelled('auth.display_name', el('input', { name: 'display_name', maxLength: 64 })));
  }
  if (authTab === 'guest') {
    fields.push(el('p', { className: 'hint' }, [t('auth.guest_hint')]));
    fields.push(labelled('auth.nickname', el('input', { name: 'nickname', maxLength: 64 })));
  }
  const error = el('p', { className: 'error', role: 'alert' }, [authError ? errorText(authError) : '']);
  const form = el('form', { id: 'auth-form', role: 'tabpanel', 'aria-labelledby': `tab-${authTab}` }, [
    ...fields,
    error,
    el('button', { type: 'submit', className: 'primary' }, [t(`auth.submit.${authTab}`)]),
  ]);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    submitAuth(form);
  });

  root.replaceChildren(el('main', { className: 'auth' }, [
    el('div', { className: 'auth-card' }, [
      el('div', { className: 'auth-top' }, [
        el('h1', {}, [t('auth.heading')]),
        languageSwitch(),
      ]),
      tabList,
      form,
    ]),
  ]));
}

/** @param {string} key @param {HTMLInputElement} input */
function labelled(key, input) {
  input.id = `field-${input.name}`;
  return el('div', { className: 'field' }, [el('label', { for: input.id }, [t(key)]), input]);
}

/** @param {HTMLFormElement} form */
async function submitAuth(form) {
  const data = Object.fromEntries(new FormData(form));
  const submit = /** @type {HTMLButtonElement} */ (form.querySelector('button[type=submit]'));
  submit.disabled = true;
  try {
    // `cookie_only` keeps the token out of the reply: the session lives in the HttpOnly cookie.
    if (authTab === 'login') {
      await api('POST', '/auth/login?cookie_only=true', { json: { username: data.username, password: data.password } });
    } else if (authTab === 'register') {
      /** @type {Record<string, unknown>} */
      const body = { username: data.username, password: data.password };
      if (String(data.display_name || '').trim()) body.display_name = data.display_name;
      await api('POST', '/auth/register?cookie_only=true', { json: body });
    } else {
      const nickname = String(data.nickname || '').trim();
      await api('POST', '/auth/guest?cookie_only=true', { json: nickname ? { nickname } : {} });
    }
    authError = '';
    showChat();
  } catch (err) {
    authError = err instanceof ApiError ? err.code : 'internal';
    renderAuth();
  }
}

/** @param {string} [reason] an error code to show on the sign-in screen */
export function showAuth(reason) {
  forgetSession();
  authError = reason ?? '';
  screen = 'auth';
  renderAuth();
}

function showChat() {
  screen = 'chat';
  startChat(root, showAuth);
}

/** @type {'auth' | 'chat'} */
let screen = 'auth';
onLangChange(() => {
  if (screen === 'auth') renderAuth();
});

// Versions before the cookie session kept a bearer token here.
localStorage.removeItem('confab.token');
if (hasSession()) showChat();
else showAuth();
