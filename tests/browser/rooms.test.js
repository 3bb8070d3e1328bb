// A public room created by someone else shows in the list of rooms to join at once,
// from the `room:created` event, well before the room list is read again (every 60 s).

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Server, launchBrowser, openPage, registerInPage } from './support.js';

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

/** Creates a room through the dialog and waits until it is open. */
async function createRoom(
  /** @type {import('playwright-core').Page} */ page, /** @type {string} */ name, /** @type {boolean} */ isPrivate,
) {
  await page.getByRole('button', { name: 'New room' }).click();
  await page.getByLabel('Room name').fill(name);
  await page.locator('#room-visibility').selectOption(isPrivate ? 'private' : 'public');
  await page.locator('dialog button[type=submit]').click();
  await page.locator('.chat-header h2', { hasText: `#${name}` }).waitFor();
}

test('new public room appears for others', async () => {
  const creator = await openPage(browser);
  await registerInPage(creator.page, server.url, 'zoe', 'Zoe');
  const other = await openPage(browser);
  await registerInPage(other.page, server.url, 'abel', 'Abel');

  // Announcements are in order, so once the public room shows, the private one created
  // before it would have shown too.
  await createRoom(creator.page, 'hidden-den', true);
  await createRoom(creator.page, 'open-plaza', false);
  await other.page.getByRole('button', { name: 'Join #open-plaza' }).waitFor({ timeout: 10_000 });
  assert.equal(await other.page.locator('.public-room', { hasText: 'hidden-den' }).count(), 0);

  await other.page.getByRole('button', { name: 'Join #open-plaza' }).click();
  await other.page.locator('.chat-header h2', { hasText: '#open-plaza' }).waitFor();
  // The creator's list does not offer the room they are in.
  assert.equal(await creator.page.locator('.public-room', { hasText: 'open-plaza' }).count(), 0);
  assert.deepEqual(creator.problems, []);
  assert.deepEqual(other.problems, []);
});

test('online count counts creator and joiner', async () => {
  const creator = await openPage(browser);
  await registerInPage(creator.page, server.url, 'mira', 'Mira');
  const joiner = await openPage(browser);
  await registerInPage(joiner.page, server.url, 'oskar', 'Oskar');

  // The header reads the count from the create and join replies, since the presence
  // event sent while subscribing arrives before the client knows the room.
  await createRoom(creator.page, 'count-room', false);
  await creator.page.locator('.online-button', { hasText: '1 online' }).waitFor({ timeout: 10_000 });

  await joiner.page.getByRole('button', { name: 'Join #count-room' }).click();
  await joiner.page.locator('.chat-header h2', { hasText: '#count-room' }).waitFor();
  await joiner.page.locator('.online-button', { hasText: '2 online' }).waitFor({ timeout: 10_000 });
  await creator.page.locator('.online-button', { hasText: '2 online' }).waitFor({ timeout: 10_000 });
  assert.deepEqual(creator.problems, []);
  assert.deepEqual(joiner.problems, []);
});
