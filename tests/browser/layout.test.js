// Layout details: spacing in the profile dialog and the members drawer at phone width.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Server, launchBrowser, openPage, registerInPage, screenshot } from './support.js';

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

/** Returns an element's box, failing the test when it is not rendered. */
async function boxOf(/** @type {import('playwright-core').Locator} */ locator) {
  const box = await locator.boundingBox();
  assert.ok(box, 'element is not rendered');
  return box;
}

test('avatar buttons have a gap', async () => {
  const { page, problems } = await openPage(browser);
  await registerInPage(page, server.url, 'gale', 'Gale');
  await page.locator('.profile-button').click();
  const upload = await boxOf(page.getByRole('button', { name: 'Upload avatar' }));
  const remove = await boxOf(page.getByRole('button', { name: 'Remove avatar' }));
  assert.ok(remove.x - (upload.x + upload.width) >= 4, `gap is ${remove.x - (upload.x + upload.width)} px`);
  assert.deepEqual(problems, []);
});

test('phone members drawer leaves title visible', async () => {
  const { page, problems } = await openPage(browser, { width: 390, height: 800 });
  await registerInPage(page, server.url, 'quinn', 'Quinn');
  await page.getByRole('button', { name: 'Back to rooms' }).click();
  await page.getByRole('button', { name: 'New room' }).click();
  await page.getByLabel('Room name').fill('q7-long-room-name-for-phones');
  await page.locator('dialog button[type=submit]').click();
  const title = page.locator('.chat-header h2');
  await title.waitFor();
  await page.locator('.online-button').click();
  await page.locator('.members').waitFor();
  await screenshot(page, 'members-drawer-phone-en');

  const titleBox = await boxOf(title);
  const drawerBox = await boxOf(page.locator('.members'));
  const lineHeight = await title.evaluate((element) => parseFloat(getComputedStyle(element).lineHeight) || 0);
  assert.ok(titleBox.height < lineHeight * 1.5, `title wraps: ${titleBox.height} px high`);
  assert.ok(drawerBox.y >= titleBox.y + titleBox.height, `drawer top ${drawerBox.y} px covers the title ending at ${titleBox.y + titleBox.height} px`);
  assert.deepEqual(problems, []);
});
