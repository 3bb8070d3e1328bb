// The profile: display name and avatar (shown to other pages at once), password change
// (which signs out the account's other sessions) and log out.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { PASSWORD, Server, launchBrowser, openPage, registerInPage, screenshot } from './support.js';

/** A 1×1 PNG image. */
const PIXEL_PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==',
  'base64',
);
const NEW_PASSWORD = 'a different secret';

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

/** Signs in through the sign-in screen. */
async function signIn(/** @type {import('playwright-core').Page} */ page, /** @type {string} */ password) {
  await page.goto(server.url);
  await page.locator('#field-username').fill('pat');
  await page.locator('#field-password').fill(password);
  await page.locator('#auth-form button[type=submit]').click();
}

test('profile edits name avatar and password', async () => {
  const { page, problems } = await openPage(browser);
  await registerInPage(page, server.url, 'pat', 'Pat');
  const other = await openPage(browser);
  await signIn(other.page, PASSWORD);
  await other.page.locator('.composer textarea').waitFor();
  // Another user watches the lobby's member list.
  const watcher = await openPage(browser);
  await registerInPage(watcher.page, server.url, 'quinn', 'Quinn');
  await watcher.page.locator('.online-button').click();
  const patRow = watcher.page.locator('.members .member', { hasText: 'Pat' });
  await patRow.waitFor();

  await page.locator('.profile-button').click();
  await page.getByLabel('Display name').fill('Patricia');
  await page.getByRole('button', { name: 'Save name' }).click();
  await page.locator('dialog .status', { hasText: 'Saved.' }).waitFor();
  await page.locator('.profile-button .name', { hasText: 'Patricia' }).waitFor();
  // Other pages show the new name without a reload: the member list and the same
  // account's other session.
  await watcher.page.locator('.members .member', { hasText: 'Patricia' }).waitFor();
  await other.page.locator('.profile-button .name', { hasText: 'Patricia' }).waitFor();

  const avatar = page.locator('dialog img.avatar');
  const generated = await avatar.getAttribute('src');
  const listed = await patRow.locator('img.avatar').getAttribute('src');
  await page.locator('#profile-avatar').setInputFiles({ name: 'pixel.png', mimeType: 'image/png', buffer: PIXEL_PNG });
  await page.getByRole('button', { name: 'Upload avatar' }).click();
  await page.locator('dialog .status', { hasText: 'Saved.' }).waitFor();
  await page.waitForFunction((before) => document.querySelector('dialog img.avatar')?.getAttribute('src') !== before, generated);
  const uploaded = await avatar.getAttribute('src');
  assert.notEqual(uploaded, listed);
  await watcher.page.waitForFunction(
    (src) => [...document.querySelectorAll('.members .member img.avatar')].some((img) => img.getAttribute('src') === src),
    uploaded,
  );

  await page.getByLabel('Current password').fill(PASSWORD);
  await page.getByLabel('New password').fill(NEW_PASSWORD);
  await page.getByRole('button', { name: 'Change password' }).click();
  await page.locator('dialog .status', { hasText: 'Password changed.' }).waitFor();
  await screenshot(page, 'profile-saved-desktop-en');

  // The password change ended the other session: that page is back at sign-in and shows the reason.
  await other.page.locator('#auth-form .error', { hasText: 'Your session has ended. Please sign in again.' }).waitFor();

  await page.getByRole('button', { name: 'Log out' }).click();
  await page.getByRole('heading', { name: 'Welcome to Confab' }).waitFor();
  const names = (await page.context().cookies()).map((cookie) => cookie.name);
  assert.ok(!names.includes('confab_session'), `cookies after log out: ${names}`);
  assert.ok(!names.includes('confab_csrf'), `cookies after log out: ${names}`);

  await signIn(page, PASSWORD);
  await page.locator('#auth-form .error', { hasText: 'Wrong username or password.' }).waitFor();
  await signIn(page, NEW_PASSWORD);
  await page.locator('.profile-button .name', { hasText: 'Patricia' }).waitFor();
  assert.deepEqual(problems, []);
  assert.deepEqual(other.problems, []);
  assert.deepEqual(watcher.problems, []);
});
