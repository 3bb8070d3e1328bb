// Unread counts in the room list count messages from others only: join and leave notices,
// the reader's own messages and recalled messages do not count, live or after a reload.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { PASSWORD, Server, launchBrowser, openPage, registerInPage } from './support.js';

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

/** Signs in over REST as a program and returns the login reply. */
function signIn(/** @type {string} */ username) {
  return server.api('POST', '/auth/login', { username, password: PASSWORD });
}

/**
 * Waits until the unread badge of a room shows `text`, and fails with the last text seen.
 * @param {import('playwright-core').Page} page @param {number} roomId @param {string} text
 */
async function badgeShows(page, roomId, text) {
  const badge = page.locator(`.room-link[data-room="${roomId}"] .badge`);
  try {
    await page.waitForFunction(
      ([id, expected]) => document.querySelector(`.room-link[data-room="${id}"] .badge`)?.textContent === expected,
      /** @type {const} */ ([roomId, text]),
    );
  } catch (err) {
    const shown = (await badge.count()) > 0 ? await badge.innerText() : '(no badge)';
    assert.fail(`unread badge of room ${roomId} shows ${shown}, expected ${text}: ${err}`);
  }
}

test('unread counts only messages from others', async () => {
  const { page, problems } = await openPage(browser);
  await registerInPage(page, server.url, 'uma', 'Uma');
  await page.getByRole('button', { name: 'New room' }).click();
  await page.getByLabel('Room name').fill('quiet');
  await page.locator('dialog button[type=submit]').click();
  await page.locator('.chat-header h2', { hasText: '#quiet' }).waitFor();
  const quiet = (await server.api('GET', '/rooms', undefined, (await signIn('uma')).token))
    .find((/** @type {any} */ room) => room.name === 'quiet');

  await page.locator('.room-link', { hasText: '#lobby' }).click();
  await page.locator('.chat-header h2', { hasText: '#lobby' }).waitFor();

  // Live: a join, two messages, the reader's own message from another device, a join and
  // a leave, then a last message. Events of a room arrive in order, so once the badge
  // shows 3 every earlier event has been counted or skipped.
  const victor = await server.api('POST', '/auth/register', { username: 'victor', password: PASSWORD });
  await server.api('POST', `/rooms/${quiet.id}/join`, undefined, victor.token);
  await server.api('POST', `/rooms/${quiet.id}/messages`, { body: 'first from victor' }, victor.token);
  const second = await server.api('POST', `/rooms/${quiet.id}/messages`, { body: 'second from victor' }, victor.token);
  const elsewhere = await signIn('uma');
  await server.api('POST', `/rooms/${quiet.id}/messages`, { body: 'uma on her phone' }, elsewhere.token);
  const wendy = await server.api('POST', '/auth/register', { username: 'wendy', password: PASSWORD });
  await server.api('POST', `/rooms/${quiet.id}/join`, undefined, wendy.token);
  await server.api('POST', `/rooms/${quiet.id}/leave`, undefined, wendy.token);
  await server.api('POST', `/rooms/${quiet.id}/messages`, { body: 'third from victor' }, victor.token);
  await badgeShows(page, quiet.id, '3');

  // After a reload the count comes from the history after the read position.
  await page.reload();
  await page.locator('.chat-header h2', { hasText: '#lobby' }).waitFor();
  await badgeShows(page, quiet.id, '3');

  // A recalled message leaves the count.
  await server.api('DELETE', `/messages/${second.id}`, undefined, victor.token);
  await badgeShows(page, quiet.id, '2');

  // Opening the room reads it.
  await page.locator('.room-link', { hasText: '#quiet' }).click();
  await page.locator('.msg .text', { hasText: 'first from victor' }).waitFor();
  assert.equal(await page.locator('.room-link', { hasText: '#quiet' }).locator('.badge').count(), 0);
  assert.deepEqual(problems, []);
});
