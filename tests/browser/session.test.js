// The session lives in the server's HttpOnly cookie: script on the page never sees the
// token, a reload keeps the user signed in, writes carry the CSRF token, and log out
// clears the cookies.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { PASSWORD, Server, launchBrowser, openPage, sendInPage } from './support.js';

/** @type {Server} */ let server;
/** @type {import('playwright-core').Browser} */ let browser;

before(async () => {
  server = await Server.start();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.close();
});

/** Everything the page's script can read that might hold a secret. */
function scriptVisibleStorage(/** @type {import('playwright-core').Page} */ page) {
  return page.evaluate(() => ({
    cookie: document.cookie,
    local: JSON.stringify({ ...localStorage }),
    session: JSON.stringify({ ...sessionStorage }),
  }));
}

test('session token stays out of script reach', async () => {
  const { page, context, problems } = await openPage(browser);
  await page.goto(server.url);
  await page.getByRole('tab', { name: 'Register' }).click();
  await page.locator('#field-username').fill('quinn');
  await page.locator('#field-password').fill(PASSWORD);
  const replyPromise = page.waitForResponse((response) => response.url().includes('/api/v1/auth/register'));
  await page.locator('#auth-form button[type=submit]').click();
  const reply = await replyPromise;
  const body = await reply.json();
  assert.equal(reply.status(), 201);
  assert.equal(body.token, undefined, 'the sign-in reply hands the token to script');
  await page.locator('.composer textarea').waitFor();

  const cookies = await context.cookies();
  const session = cookies.find((cookie) => cookie.name === 'confab_session');
  assert.ok(session, `no session cookie in ${cookies.map((cookie) => cookie.name)}`);
  assert.equal(session.httpOnly, true);
  const visible = await scriptVisibleStorage(page);
  assert.ok(!visible.cookie.includes(session.value), 'document.cookie shows the session token');
  assert.ok(!visible.local.includes(session.value), 'localStorage holds the session token');
  assert.ok(!visible.session.includes(session.value), 'sessionStorage holds the session token');
  assert.equal(await page.evaluate(() => localStorage.getItem('confab.token')), null);

  // A write over REST (creating a room) passes the CSRF check, and the socket works.
  await page.getByRole('button', { name: 'New room' }).click();
  await page.getByLabel('Room name').fill('cookie-room');
  await page.locator('dialog button[type=submit]').click();
  await page.locator('.chat-header h2', { hasText: '#cookie-room' }).waitFor();
  await sendInPage(page, 'sent over a cookie session');

  // A reload keeps the session: the handshake authenticates by cookie.
  await page.reload();
  await page.locator('.composer textarea').waitFor();
  await page.locator('.sidebar', { hasText: 'cookie-room' }).waitFor();

  // A log out that cannot reach the server keeps the session and says so, because only
  // the server can clear the HttpOnly cookie.
  await page.route('**/api/v1/auth/logout', (route) => route.abort());
  await page.locator('.profile-button').click();
  await page.getByRole('button', { name: 'Log out' }).click();
  await page.locator('p.error[role=alert]', { hasText: 'The server cannot be reached.' }).waitFor();
  assert.equal(await page.locator('.composer textarea').count(), 1);
  await page.unroute('**/api/v1/auth/logout');

  await page.locator('.profile-button').click();
  await page.getByRole('button', { name: 'Log out' }).click();
  await page.getByRole('heading', { name: 'Welcome to Confab' }).waitFor();
  const names = (await context.cookies()).map((cookie) => cookie.name);
  assert.ok(!names.includes('confab_session'), `cookies after log out: ${names}`);
  assert.ok(!names.includes('confab_csrf'), `cookies after log out: ${names}`);

  // The old token is dead on the server too.
  const me = await fetch(`${server.url}/api/v1/me`, { headers: { cookie: `confab_session=${session.value}` } });
  assert.equal(me.status, 401);

  await page.reload();
  await page.getByRole('heading', { name: 'Welcome to Confab' }).waitFor();
  assert.deepEqual(problems, []);
});

test('expired cookie shows sign-in, not a new guest', async () => {
  const { page, context, problems } = await openPage(browser);
  const login = await server.api('POST', '/auth/register', { username: 'rowan', password: PASSWORD });
  await server.api('POST', '/auth/logout', undefined, login.token);
  const url = new URL(server.url);
  // Cookies of a session the server already ended, as a browser keeps them after the
  // session expires on the server.
  await context.addCookies([
    { name: 'confab_session', value: login.token, domain: url.hostname, path: '/', httpOnly: true, sameSite: 'Lax' },
    { name: 'confab_csrf', value: login.csrf_token, domain: url.hostname, path: '/', sameSite: 'Lax' },
  ]);
  await page.goto(server.url);
  await page.locator('#auth-form .error', { hasText: /./ }).waitFor();
  assert.equal(await page.locator('.composer textarea').count(), 0);

  // No guest account was created in its place: a new guest would have joined the lobby.
  const witness = await server.api('POST', '/auth/register', { username: 'sage', password: PASSWORD });
  const lobby = (await server.api('GET', '/rooms', undefined, witness.token))
    .find((/** @type {any} */ room) => room.name === 'lobby');
  const members = await server.api('GET', `/rooms/${lobby.id}/members`, undefined, witness.token);
  const guests = members.filter((/** @type {any} */ member) => member.user.kind === 'guest');
  assert.deepEqual(guests, []);
  const unexpected = problems.filter((line) => !/WebSocket/.test(line));
  assert.deepEqual(unexpected, []);
});
