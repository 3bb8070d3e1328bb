// Avatars in the message log use the versioned address from the author's `User`, so a
// changed avatar shows at once for the author and on the next load for everyone else.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { crc32, deflateSync } from 'node:zlib';
import { Server, launchBrowser, openPage, registerInPage, sendInPage } from './support.js';

/**
 * Builds a 1×1 RGB PNG image of one colour.
 * @param {number} red @param {number} green @param {number} blue
 */
function pixelPng(red, green, blue) {
  /** @param {string} type @param {Buffer} data */
  const chunk = (type, data) => {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body));
    return Buffer.concat([length, body, crc]);
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(1, 0);
  header.writeUInt32BE(1, 4);
  header[8] = 8; // bit depth
  header[9] = 2; // colour type: RGB
  const pixels = deflateSync(Buffer.from([0, red, green, blue]));
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', pixels),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

const RED_PNG = pixelPng(255, 0, 0);
const BLUE_PNG = pixelPng(0, 0, 255);

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

/** Returns the `src` of the avatar next to the confirmed message with `text`. */
function avatarOfMessage(/** @type {import('playwright-core').Page} */ page, /** @type {string} */ text) {
  return page.locator('.msg:not(.pending)', { hasText: text }).locator('img.avatar').getAttribute('src');
}

/** Uploads an avatar through the profile dialog and closes it. */
async function uploadAvatar(/** @type {import('playwright-core').Page} */ page, /** @type {Buffer} */ image) {
  await page.locator('.profile-button').click();
  await page.locator('#profile-avatar').setInputFiles({ name: 'avatar.png', mimeType: 'image/png', buffer: image });
  await page.getByRole('button', { name: 'Upload avatar' }).click();
  await page.locator('dialog .status', { hasText: 'Saved.' }).waitFor();
  await page.keyboard.press('Escape');
}

test('message avatars follow avatar changes', async () => {
  const author = await openPage(browser);
  await registerInPage(author.page, server.url, 'yara', 'Yara');
  await sendInPage(author.page, 'hello from yara');
  const reader = await openPage(browser);
  await registerInPage(reader.page, server.url, 'xavier', 'Xavier');
  await reader.page.locator('.msg .text', { hasText: 'hello from yara' }).waitFor();

  const generated = await avatarOfMessage(author.page, 'hello from yara');
  assert.match(generated ?? '', /\/avatar\?v=/);

  // The author sees the new version at once, on the message already on screen.
  await uploadAvatar(author.page, RED_PNG);
  await author.page.waitForFunction(
    (before) => document.querySelector('.msg:not(.pending) img.avatar')?.getAttribute('src') !== before,
    generated,
  );
  const red = await avatarOfMessage(author.page, 'hello from yara');
  assert.match(red ?? '', /\/avatar\?v=/);

  // The reader gets the current version on the next load.
  await reader.page.reload();
  await reader.page.locator('.msg .text', { hasText: 'hello from yara' }).waitFor();
  await reader.page.waitForFunction(
    (expected) => [...document.querySelectorAll('.msg:not(.pending) img.avatar')].some((img) => img.getAttribute('src') === expected),
    red,
  );

  await uploadAvatar(author.page, BLUE_PNG);
  await author.page.waitForFunction(
    (before) => document.querySelector('.msg:not(.pending) img.avatar')?.getAttribute('src') !== before,
    red,
  );
  const blue = await avatarOfMessage(author.page, 'hello from yara');
  assert.notEqual(blue, red);
  await reader.page.reload();
  await reader.page.waitForFunction(
    (expected) => [...document.querySelectorAll('.msg:not(.pending) img.avatar')].some((img) => img.getAttribute('src') === expected),
    blue,
  );
  // The new address serves the new image.
  const served = Buffer.from(await (await fetch(`${server.url}${blue}`)).arrayBuffer());
  assert.deepEqual(served, BLUE_PNG);
  assert.deepEqual(author.problems, []);
  assert.deepEqual(reader.problems, []);
});
