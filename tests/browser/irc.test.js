// irssi, an IRC client Confab did not write, runs under tmux with SASL PLAIN for a
// registered account, joins #lobby and talks with a person in the web client. Both sides
// must show the other's Chinese text and emoji unchanged.
//
// Needs irssi (1.2 or later, for SASL settings in the chatnet) and tmux on PATH;
// scripts/test-browser.sh installs both with apt-get when they are missing. tmux runs on
// its own socket in a temporary directory, so the test never touches another tmux server.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  PASSWORD, Server, WAIT_MS, freePort, launchBrowser, openPage, registerInPage, screenshot, sendInPage,
} from './support.js';

const IRC_USER = 'ilse';
const IRC_DISPLAY_NAME = 'Ilse';

/** @type {Server} */ let server;
/** @type {number} */ let ircPort;
/** @type {import('playwright-core').Browser} */ let browser;
/** @type {Awaited<ReturnType<typeof openPage>>} */ let web;
/** @type {string} */ let irssiHome;
/** @type {string} */ let tmuxSocket;
let tmuxStarted = false;

/** Runs tmux on this test's own socket, with a UTF-8 locale so wide characters pass. */
function tmux(/** @type {string[]} */ ...args) {
  return execFileSync('tmux', ['-S', tmuxSocket, ...args], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, LANG: 'C.UTF-8', LC_ALL: 'C.UTF-8', TERM: 'xterm-256color' },
    timeout: 10_000,
  });
}

/** irssi's current screen, as plain text. */
function readIrssiScreen() {
  return tmux('capture-pane', '-p', '-J', '-t', 'irssi');
}

/** Everything irssi logged for #lobby so far (autolog, one file per target). */
function readIrssiLobbyLog() {
  const logDir = join(irssiHome, 'logs');
  return readdirSync(logDir)
    .filter((name) => name.toLowerCase().includes('lobby'))
    .map((name) => readFileSync(join(logDir, name), 'utf8'))
    .join('');
}

/**
 * Polls `probe` every 200 ms until it returns true, for at most `ms`.
 * @param {() => boolean} probe @param {string} what @param {number} [ms]
 */
async function waitUntil(probe, what, ms = WAIT_MS) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (probe()) return;
    await new Promise((resolveWait) => setTimeout(resolveWait, 200));
  }
  let screen = '';
  try { screen = readIrssiScreen(); } catch (err) { screen = `(no screen: ${err})`; }
  throw new Error(`timed out after ${ms} ms waiting for ${what}; irssi screen:\n${screen}`);
}

/** Types one line into irssi and presses Enter. */
function typeInIrssi(/** @type {string} */ line) {
  tmux('send-keys', '-t', 'irssi', '-l', line);
  tmux('send-keys', '-t', 'irssi', 'Enter');
}

/** Writes an irssi config: one network with SASL PLAIN, #lobby on autojoin, autolog on. */
function writeIrssiConfig() {
  mkdirSync(join(irssiHome, 'logs'));
  const config = `
servers = (
  { address = "127.0.0.1"; port = "${ircPort}"; chatnet = "confab"; use_tls = "no"; autoconnect = "yes"; }
);
chatnets = {
  confab = {
    type = "IRC";
    nick = "${IRC_USER}";
    sasl_mechanism = "PLAIN";
    sasl_username = "${IRC_USER}";
    sasl_password = "${PASSWORD}";
  };
};
channels = ( { name = "#lobby"; chatnet = "confab"; autojoin = "yes"; } );
settings = {
  core = { real_name = "Ilse"; user_name = "${IRC_USER}"; nick = "${IRC_USER}"; };
  "fe-common/core" = {
    term_charset = "UTF-8";
    autolog = "yes";
    autolog_path = "${join(irssiHome, 'logs')}/$0.log";
    autolog_level = "ALL";
  };
};
`;
  writeFileSync(join(irssiHome, 'config'), config);
}

before(async () => {
  ircPort = await freePort();
  server = await Server.start({ args: [`--irc-listen=127.0.0.1:${ircPort}`] });
  await server.api('POST', '/auth/register', {
    username: IRC_USER, password: PASSWORD, display_name: IRC_DISPLAY_NAME,
  });

  irssiHome = mkdtempSync(join(tmpdir(), 'confab-irssi-'));
  tmuxSocket = join(irssiHome, 'tmux.sock');
  writeIrssiConfig();
  tmux('new-session', '-d', '-s', 'irssi', '-x', '160', '-y', '40',
    `irssi --home=${irssiHome} --config=${join(irssiHome, 'config')}`);
  tmuxStarted = true;

  browser = await launchBrowser();
  web = await openPage(browser);
});

after(async () => {
  if (tmuxStarted) {
    try { typeInIrssi('/quit'); } catch { /* irssi may already be gone */ }
    // kill-server ends only the tmux server on this test's socket.
    try { tmux('kill-server'); } catch { /* already exited after /quit */ }
  }
  await browser?.close();
  await server?.close();
  if (irssiHome) rmSync(irssiHome, { recursive: true, force: true });
});

test('irssi and browser chat in #lobby', async () => {
  // irssi signs in with SASL and joins #lobby from its autojoin list.
  await waitUntil(() => readIrssiLobbyLog().includes('has joined #lobby'), 'irssi to join #lobby');
  // The status window, still in front, shows how irssi signed in.
  await waitUntil(() => readIrssiScreen().includes('SASL authentication succeeded'), 'irssi to report SASL success');
  assert.match(readIrssiScreen(), /You are now logged in as ilse/);
  typeInIrssi('/window goto #lobby');
  await waitUntil(() => readIrssiScreen().includes('[#lobby]'), 'irssi to show the #lobby window');

  await registerInPage(web.page, server.url, 'wen', 'Wen');
  await web.page.locator('.chat-header h2', { hasText: '#lobby' }).waitFor();

  // Browser to irssi.
  const fromWeb = '你好，IRC 的朋友 🎉👩‍💻 from the web';
  await sendInPage(web.page, fromWeb);
  await waitUntil(() => readIrssiLobbyLog().includes(fromWeb), 'the web message in irssi\'s log');
  await waitUntil(() => readIrssiScreen().includes('from the web'), 'the web message on irssi\'s screen');
  assert.ok(readIrssiLobbyLog().includes(`<Wen> ${fromWeb}`) || readIrssiLobbyLog().includes(`< Wen> ${fromWeb}`),
    `irssi log lacks the line from Wen:\n${readIrssiLobbyLog()}`);

  // irssi to browser.
  const fromIrc = '中文消息 from irssi 🚀✨ 测试';
  typeInIrssi(fromIrc);
  const shown = web.page.locator('.msg .text', { hasText: fromIrc });
  await shown.waitFor();
  assert.equal(await shown.innerText(), fromIrc);

  // The line came from the registered account, so SASL signed irssi in (a guest would
  // show another name and has no username).
  const rooms = await server.api('GET', '/rooms', undefined, await webToken());
  const lobby = rooms.find((/** @type {any} */ room) => room.name === 'lobby');
  assert.ok(lobby, 'no lobby room');
  const history = await server.api('GET', `/rooms/${lobby.id}/messages`, undefined, await webToken());
  const stored = history.messages.find((/** @type {any} */ message) => message.body === fromIrc);
  assert.ok(stored, `message from irssi not in history: ${JSON.stringify(history)}`);
  assert.equal(stored.author_name, IRC_DISPLAY_NAME);
  const ircAccount = await server.api('POST', '/auth/login', { username: IRC_USER, password: PASSWORD });
  assert.equal(stored.author_id, ircAccount.user.id);

  await screenshot(web.page, 'irc-irssi-web');
  assert.deepEqual(web.problems, []);
});

/** A token for REST reads, from a login of the web user. */
async function webToken() {
  const login = await server.api('POST', '/auth/login', { username: 'wen', password: PASSWORD });
  return login.token;
}
